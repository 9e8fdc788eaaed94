//! Read-ahead: each input volume is inflated and decoded on its own thread while the
//! accumulators work on the previous slice.
//!
//! Why: inflating a `.nii.gz` costs more than all the statistics together, and a
//! two-map comparison has two files to inflate. With one reader thread per file the
//! pass takes about as long as the slowest single reader when cores are free. Memory
//! stays flat: at most `DEPTH` slices wait in the channel, and their buffers are
//! handed back for reuse.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use crate::nifti::{Header, NiftiError, VolumeReader};

/// Decoded slices allowed to wait for the consumer.
const DEPTH: usize = 1;

type Slice = Result<Vec<f64>, NiftiError>;

/// A volume whose slices are read ahead on a background thread.
pub(crate) struct SliceStream {
    path: PathBuf,
    header: Header,
    slices: Option<Receiver<Slice>>,
    recycle: Sender<Vec<f64>>,
    worker: Option<JoinHandle<()>>,
    current: Vec<f64>,
}

impl std::fmt::Debug for SliceStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SliceStream")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SliceStream {
    /// Start reading `reader` ahead on its own thread (fails only when the OS
    /// refuses a thread).
    pub(crate) fn spawn(reader: VolumeReader) -> std::io::Result<SliceStream> {
        let path = reader.path().to_path_buf();
        let header = reader.header().clone();
        let (slice_tx, slice_rx) = mpsc::sync_channel(DEPTH);
        let (recycle_tx, recycle_rx) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("inspect-reader".into())
            .spawn(move || read_ahead(reader, slice_tx, recycle_rx))?;
        Ok(SliceStream {
            path,
            header,
            slices: Some(slice_rx),
            recycle: recycle_tx,
            worker: Some(worker),
            current: Vec::new(),
        })
    }

    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The next slice (x fastest), `Ok(None)` after the last one.
    pub(crate) fn next_slice(&mut self) -> Result<Option<&[f64]>, NiftiError> {
        let Some(rx) = &self.slices else {
            return Ok(None);
        };
        match rx.recv() {
            Ok(Ok(slice)) => {
                let done = std::mem::replace(&mut self.current, slice);
                // The worker may have finished; then the buffer is simply dropped.
                let _ = self.recycle.send(done);
                Ok(Some(&self.current))
            }
            Ok(Err(e)) => Err(e),
            // The worker hung up: the volume is complete.
            Err(_) => Ok(None),
        }
    }
}

impl Drop for SliceStream {
    fn drop(&mut self) {
        // Hanging up makes the worker's next send fail, so it stops after the slice
        // it is reading; wait for it so no thread outlives the call.
        self.slices = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn read_ahead(mut reader: VolumeReader, slices: SyncSender<Slice>, recycle: Receiver<Vec<f64>>) {
    loop {
        let mut buf = recycle.try_recv().unwrap_or_default();
        match reader.read_slice(&mut buf) {
            Ok(true) => {
                if slices.send(Ok(buf)).is_err() {
                    return;
                }
            }
            Ok(false) => return,
            Err(e) => {
                let _ = slices.send(Err(e));
                return;
            }
        }
    }
}
