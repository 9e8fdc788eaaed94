//! gzip decoding member by member, with Python's (and so nibabel's) tolerance.
//!
//! `.nii.gz` files may hold several gzip members (pigz, `cat a.gz b.gz`), and
//! some tools pad the file with zero bytes. Python's `gzip` module, which
//! nibabel reads through, decodes every member, skips zero padding between
//! members, and never looks past the bytes it was asked for. flate2's
//! `MultiGzDecoder` instead fails on any non-gzip byte after a member, so we
//! drive `bufread::GzDecoder` one member at a time ourselves: same decoder,
//! same CRC checks, Python's framing rules.

use std::io::{self, BufRead, Read};

use flate2::bufread::GzDecoder;

/// A reader over the concatenated contents of all gzip members in `R`.
pub(crate) struct Members<R: BufRead> {
    current: Option<GzDecoder<R>>,
}

impl<R: BufRead> Members<R> {
    pub(crate) fn new(inner: R) -> Self {
        Members {
            current: Some(GzDecoder::new(inner)),
        }
    }

    /// Inflate the rest of the current member (at most `limit` bytes) so that
    /// its CRC-32 and length get checked. `Ok(true)` when the member ended and
    /// checked out, `Ok(false)` when more than `limit` bytes remain in it.
    /// Later members are not touched.
    pub(crate) fn finish_member(&mut self, limit: u64) -> io::Result<bool> {
        let Some(decoder) = self.current.as_mut() else {
            return Ok(true);
        };
        let inflated = io::copy(&mut decoder.take(limit), &mut io::sink())?;
        Ok(inflated < limit)
    }
}

impl<R: BufRead> Read for Members<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(decoder) = self.current.as_mut() else {
                return Ok(0);
            };
            let n = decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            // The member ended and its CRC matched: next member, padding, or the end.
            let mut inner = self.current.take().expect("decoder present").into_inner();
            if skip_zero_padding(&mut inner)? {
                self.current = Some(GzDecoder::new(inner));
            }
        }
    }
}

/// Skip NUL bytes; `Ok(true)` when more (non-zero) input follows.
fn skip_zero_padding<R: BufRead>(inner: &mut R) -> io::Result<bool> {
    loop {
        let available = inner.fill_buf()?;
        if available.is_empty() {
            return Ok(false);
        }
        let zeros = available.iter().take_while(|&&b| b == 0).count();
        let more = zeros < available.len();
        inner.consume(zeros);
        if more {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn inflate(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Members::new(bytes).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn members_padding_and_crc() {
        let mut file = gz(b"hello ");
        file.extend(gz(b"world"));
        file.extend([0u8; 100]);
        file.extend(gz(b"!"));
        file.extend([0u8; 7]);
        assert_eq!(inflate(&file).unwrap(), b"hello world!");

        let mut bad = gz(b"hello");
        let n = bad.len();
        bad[n - 8] ^= 1; // CRC-32
        assert!(inflate(&bad).is_err());

        let mut trailing = gz(b"hello");
        trailing.extend(b"junk");
        assert!(
            inflate(&trailing).is_err(),
            "reading into junk fails, as in Python"
        );

        let mut m = Members::new(&trailing[..]);
        let mut five = [0u8; 5];
        m.read_exact(&mut five).unwrap();
        assert!(m.finish_member(1024).unwrap(), "the member itself is sound");
    }
}
