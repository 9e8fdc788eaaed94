//! Bounds on a DICOM file, checked on its raw bytes before dicom-rs parses it.
//!
//! Why: dicom-rs builds its in-memory object recursively and trusts the lengths a
//! file declares. 200 000 nested undefined-length sequences overflow the stack and
//! abort the whole server process; one element declaring 4 GiB makes it reserve
//! 4 GiB. A DICOM file is untrusted input, so before every dicom-rs parse this
//! module walks the bytes once, iteratively, on a fixed-size stack and without
//! allocating (except to inflate a deflated data set, under [`MAX_INFLATED_BYTES`]),
//! and refuses a file that
//! * nests sequences deeper than [`MAX_DEPTH`],
//! * declares a length beyond the bytes left in the file or in its enclosing item,
//! * holds one element (other than pixel data) larger than [`MAX_ELEMENT_BYTES`],
//! * holds more than [`MAX_VALUES`] elements, items and string values in all (dicom-rs
//!   keeps each as its own object: a file of 8-byte empty elements, or one element of
//!   backslashes split into millions of empty strings, would cost 20-150 times its size).
//!
//! The walk also measures the pixel data actually present, so a header-only series
//! is refused before a volume is reserved for it (see `convert::plan`).
//!
//! It reads what dicom-rs reads: the preamble and `DICM` (at byte 128, or at 0), the
//! file meta group (explicit VR little endian, sized by its group length), then the
//! data set in implicit VR LE, explicit VR LE or BE, or deflated explicit VR LE:
//! sequences and items of defined or undefined length, their delimiters, and the
//! fragments of encapsulated pixel data. It refuses; it never repairs. A file without
//! `DICM`, or whose meta group dicom-rs would not read, is "not DICOM" (`Ok(None)`).

use std::io::Read;
use std::path::Path;

use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::DicomError;

/// Deepest nesting of sequences (encapsulated pixel data counts as one level).
/// Real series nest a few levels.
pub(crate) const MAX_DEPTH: usize = 64;
/// Largest single element other than pixel data: 64 MiB.
pub(crate) const MAX_ELEMENT_BYTES: u64 = 64 << 20;
/// Most elements, items and string values (backslash-separated) one file may hold.
/// A CT slice holds a few thousand; counted against this, dicom-rs's objects stay
/// within a few hundred MiB.
pub(crate) const MAX_VALUES: u64 = 1 << 20;
/// Largest inflated data set of a deflated file: the cap on one entry.
pub(crate) const MAX_INFLATED_BYTES: u64 = super::source::MAX_ENTRY_BYTES;

const UNDEFINED: u32 = u32::MAX;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_END: (u16, u16) = (0xFFFE, 0xE0DD);
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
/// Explicit VRs whose value dicom-rs splits into strings at each backslash.
const MULTI_STRING_VRS: [&[u8; 2]; 13] = [
    b"AE", b"AS", b"CS", b"DA", b"DS", b"DT", b"IS", b"LO", b"PN", b"SH", b"TM", b"UI", b"UC",
];
/// Explicit VRs with a 2-byte length; every other VR (unknown ones too, read as UN
/// by dicom-rs) has 2 reserved bytes and a 4-byte length.
const SHORT_VRS: [&[u8; 2]; 21] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
];
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED_LE: &str = "1.2.840.10008.1.2.1.99";

/// What the walk measured in a file that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Walked {
    /// Bytes of the top-level PixelData: the value length of native pixel data, or
    /// the sum of the fragments of encapsulated pixel data. `None`: no pixel data.
    pub pixel_bytes: Option<u64>,
}

/// Why a file was refused. Offsets count from the start of the file (for a deflated
/// file: of the inflated data set). No byte of the file is ever shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    TooDeep {
        offset: u64,
    },
    PastEnd {
        offset: u64,
        declared: u64,
        left: u64,
    },
    TooLarge {
        offset: u64,
        declared: u64,
    },
    TooMany {
        offset: u64,
    },
    Broken {
        offset: u64,
        what: &'static str,
    },
    Inflate {
        too_large: bool,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Refusal::TooDeep { offset } => write!(
                f,
                "sequences nest deeper than {MAX_DEPTH} levels (at byte {offset}); at most \
                 {MAX_DEPTH} are read"
            ),
            Refusal::PastEnd {
                offset,
                declared,
                left,
            } => write!(
                f,
                "the element at byte {offset} declares {declared} bytes but only {left} are left \
                 in the file or its enclosing item; a length may not run past what holds it"
            ),
            Refusal::TooLarge { offset, declared } => write!(
                f,
                "the element at byte {offset} declares {declared} bytes; one element other than \
                 the pixel data may hold at most {} MiB",
                MAX_ELEMENT_BYTES >> 20
            ),
            Refusal::TooMany { offset } => write!(
                f,
                "more than {MAX_VALUES} elements, items and string values by byte {offset}; one \
                 file may hold at most that many (a CT slice holds a few thousand)"
            ),
            Refusal::Broken { offset, what } => {
                write!(f, "{what} at byte {offset}: the file's structure is broken")
            }
            Refusal::Inflate { too_large: true } => write!(
                f,
                "the deflated data set inflates to more than {} MiB, the most read of one file",
                MAX_INFLATED_BYTES >> 20
            ),
            Refusal::Inflate { too_large: false } => {
                write!(
                    f,
                    "the deflated data set does not inflate (a corrupt deflate stream)"
                )
            }
        }
    }
}

/// [`walk`], with a refusal as the error naming the source and the entry.
pub(crate) fn check(
    bytes: &[u8],
    source: &Path,
    entry: &str,
) -> Result<Option<Walked>, DicomError> {
    walk(bytes).map_err(|refusal| {
        DicomError::Bounds(format!(
            "{}: entry {entry}: {refusal}; ctmr-skill refuses such a file before parsing it. \
             Fix: the file is damaged or not a DICOM image: remove it from the series, or \
             export the series again from the scanner or PACS",
            source.display()
        ))
    })
}

/// Walk a whole DICOM file. `Ok(None)`: not DICOM (no `DICM`, or a meta group or
/// transfer syntax dicom-rs would not read).
pub(crate) fn walk(bytes: &[u8]) -> Result<Option<Walked>, Refusal> {
    let Some(start) = magic_end(bytes) else {
        return Ok(None);
    };
    let Some((uid, data_start)) = meta(bytes, start)? else {
        return Ok(None);
    };
    if TransferSyntaxRegistry.get(uid).is_none() {
        return Ok(None);
    }
    let walked = match uid {
        DEFLATED_LE => {
            let inflated = inflate(&bytes[data_start..])?;
            Walker::new(&inflated, 0, Syntax::ExplicitLe).run()?
        }
        IMPLICIT_LE => Walker::new(bytes, data_start, Syntax::Implicit).run()?,
        EXPLICIT_BE => Walker::new(bytes, data_start, Syntax::ExplicitBe).run()?,
        _ => Walker::new(bytes, data_start, Syntax::ExplicitLe).run()?,
    };
    Ok(Some(walked))
}

/// Where the meta group starts: after `DICM` at byte 128 (behind the preamble) or 0.
fn magic_end(bytes: &[u8]) -> Option<usize> {
    if bytes.get(128..132) == Some(b"DICM".as_slice()) {
        Some(132)
    } else if bytes.get(..4) == Some(b"DICM".as_slice()) {
        Some(4)
    } else {
        None
    }
}

/// The meta group, as dicom-rs reads it: (0002,0000) first, then elements until
/// the group length is consumed. The transfer syntax UID and where the data set starts.
fn meta(bytes: &[u8], start: usize) -> Result<Option<(&str, usize)>, Refusal> {
    let le = Syntax::ExplicitLe;
    let group_length = match header(bytes, start, bytes.len(), le) {
        Ok(Some(h)) if h.tag == (2, 0) && h.len == 4 && bytes.len() >= start + 12 => {
            u32_at(bytes, start + 8, false)
        }
        _ => return Ok(None),
    };
    let (mut pos, mut consumed, mut uid) = (start + 12, 0u64, None);
    while consumed < u64::from(group_length) {
        let h = match header(bytes, pos, bytes.len(), le) {
            Ok(Some(h)) if h.len != UNDEFINED => h,
            _ => return Ok(None),
        };
        let value = pos + h.size;
        fits(h.len, value, bytes.len(), pos)?;
        capped(h.len, pos)?;
        if h.tag == (2, 0x10) {
            uid = std::str::from_utf8(&bytes[value..value + h.len as usize]).ok();
        }
        pos = value + h.len as usize;
        consumed += (h.size as u64) + u64::from(h.len);
    }
    Ok(uid.map(|u| (u.trim_end_matches(['\0', ' ']), pos)))
}

fn inflate(raw: &[u8]) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(raw)
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|_| Refusal::Inflate { too_large: false })?;
    if out.len() as u64 > MAX_INFLATED_BYTES {
        return Err(Refusal::Inflate { too_large: true });
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    Implicit,
    ExplicitLe,
    ExplicitBe,
}

/// One element (or item, or delimiter) header.
#[derive(Debug, Clone, Copy)]
struct Header {
    tag: (u16, u16),
    len: u32,
    /// Explicit VR SQ.
    sq: bool,
    /// A value dicom-rs may split into strings (a multi-valued string VR; in
    /// implicit VR any element, the VR being unknown here).
    strings: bool,
    /// Bytes of the header itself.
    size: usize,
}

fn u16_at(b: &[u8], at: usize, big: bool) -> u16 {
    let v = [b[at], b[at + 1]];
    if big {
        u16::from_be_bytes(v)
    } else {
        u16::from_le_bytes(v)
    }
}

fn u32_at(b: &[u8], at: usize, big: bool) -> u32 {
    let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if big {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

/// The header at `pos`, read within `limit`. `Ok(None)` at the end of the file
/// (fewer than 4 bytes left: dicom-rs ends the data set there too).
fn header(b: &[u8], pos: usize, limit: usize, syntax: Syntax) -> Result<Option<Header>, Refusal> {
    let left = limit - pos;
    if left < 4 && limit == b.len() {
        return Ok(None);
    }
    let cut = Refusal::Broken {
        offset: pos as u64,
        what: "an element header cut short",
    };
    let big = syntax == Syntax::ExplicitBe;
    if left < 8 {
        return Err(cut);
    }
    let tag = (u16_at(b, pos, big), u16_at(b, pos + 2, big));
    if tag.0 == 0xFFFE || syntax == Syntax::Implicit {
        let len = u32_at(b, pos + 4, big);
        return Ok(Some(Header {
            tag,
            len,
            sq: false,
            strings: tag.0 != 0xFFFE,
            size: 8,
        }));
    }
    let vr = [b[pos + 4], b[pos + 5]];
    if SHORT_VRS.contains(&&vr) {
        let len = u32::from(u16_at(b, pos + 6, big));
        return Ok(Some(Header {
            tag,
            len,
            sq: false,
            strings: MULTI_STRING_VRS.contains(&&vr),
            size: 8,
        }));
    }
    if left < 12 {
        return Err(cut);
    }
    let len = u32_at(b, pos + 8, big);
    Ok(Some(Header {
        tag,
        len,
        sq: &vr == b"SQ",
        strings: &vr == b"UC",
        size: 12,
    }))
}

/// A defined length starting at `value` must end within `limit`.
fn fits(len: u32, value: usize, limit: usize, at: usize) -> Result<(), Refusal> {
    let left = limit.saturating_sub(value);
    if len as usize > left {
        return Err(Refusal::PastEnd {
            offset: at as u64,
            declared: u64::from(len),
            left: left as u64,
        });
    }
    Ok(())
}

fn capped(len: u32, at: usize) -> Result<(), Refusal> {
    if u64::from(len) > MAX_ELEMENT_BYTES {
        return Err(Refusal::TooLarge {
            offset: at as u64,
            declared: u64::from(len),
        });
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The top-level data set or an item's.
    DataSet,
    /// A sequence: items expected.
    Sequence,
    /// Encapsulated pixel data: fragments expected.
    Fragments,
}

/// An open data set, sequence or item: where it ends (its own end when `defined`,
/// else the end of what holds it).
#[derive(Debug, Clone, Copy)]
struct Frame {
    kind: Kind,
    end: usize,
    defined: bool,
}

const EMPTY: Frame = Frame {
    kind: Kind::DataSet,
    end: 0,
    defined: true,
};

/// The iterative walk. An item is open only inside a sequence, one at a time, so the
/// stack holds at most the data set, [`MAX_DEPTH`] sequences and as many items.
struct Walker<'a> {
    b: &'a [u8],
    syntax: Syntax,
    stack: [Frame; 2 * MAX_DEPTH + 1],
    frames: usize,
    depth: usize,
    pos: usize,
    pixel_bytes: Option<u64>,
    /// Elements, items and string values so far (see [`MAX_VALUES`]).
    values: u64,
}

impl<'a> Walker<'a> {
    fn new(b: &'a [u8], start: usize, syntax: Syntax) -> Walker<'a> {
        let mut stack = [EMPTY; 2 * MAX_DEPTH + 1];
        stack[0].end = b.len();
        Walker {
            b,
            syntax,
            stack,
            frames: 1,
            depth: 0,
            pos: start,
            pixel_bytes: None,
            values: 0,
        }
    }

    fn top(&self) -> Frame {
        self.stack[self.frames - 1]
    }

    fn run(mut self) -> Result<Walked, Refusal> {
        loop {
            while self.frames > 0 && self.top().defined && self.top().end == self.pos {
                self.pop();
            }
            if self.frames == 0 {
                break;
            }
            let top = self.top();
            let Some(h) = header(self.b, self.pos, top.end, self.syntax)? else {
                break;
            };
            let at = self.pos;
            self.count(1, at)?;
            self.pos += h.size;
            match top.kind {
                Kind::DataSet => self.in_data_set(h, at)?,
                Kind::Sequence => self.in_sequence(h, at)?,
                Kind::Fragments => self.in_fragments(h, at)?,
            }
        }
        Ok(Walked {
            pixel_bytes: self.pixel_bytes,
        })
    }

    fn count(&mut self, n: u64, at: usize) -> Result<(), Refusal> {
        self.values += n;
        if self.values > MAX_VALUES {
            return Err(Refusal::TooMany { offset: at as u64 });
        }
        Ok(())
    }

    fn pop(&mut self) {
        self.frames -= 1;
        if self.stack[self.frames].kind != Kind::DataSet {
            self.depth -= 1;
        }
    }

    /// Open a frame whose value starts at `self.pos`: `len` bytes, or undefined.
    fn push(&mut self, kind: Kind, len: u32, at: usize) -> Result<(), Refusal> {
        if kind != Kind::DataSet {
            if self.depth == MAX_DEPTH {
                return Err(Refusal::TooDeep { offset: at as u64 });
            }
            self.depth += 1;
        }
        let limit = self.top().end;
        let frame = if len == UNDEFINED {
            Frame {
                kind,
                end: limit,
                defined: false,
            }
        } else {
            fits(len, self.pos, limit, at)?;
            Frame {
                kind,
                end: self.pos + len as usize,
                defined: true,
            }
        };
        self.stack[self.frames] = frame;
        self.frames += 1;
        Ok(())
    }

    /// Skip a defined-length value, checked against what holds it.
    fn skip(&mut self, len: u32, at: usize) -> Result<(), Refusal> {
        fits(len, self.pos, self.top().end, at)?;
        self.pos += len as usize;
        Ok(())
    }

    fn in_data_set(&mut self, h: Header, at: usize) -> Result<(), Refusal> {
        let nested = self.frames > 1;
        match h.tag {
            ITEM_END if nested => self.pop(),
            SEQUENCE_END if nested => {
                self.pop();
                if self.frames > 1 && self.top().kind == Kind::Sequence {
                    self.pop();
                }
            }
            // Stray delimiters at the top level: dicom-rs ignores them too.
            ITEM_END | SEQUENCE_END => {}
            (0xFFFE, _) => {
                return Err(Refusal::Broken {
                    offset: at as u64,
                    what: "an item outside a sequence",
                })
            }
            PIXEL_DATA if h.len == UNDEFINED => self.push(Kind::Fragments, UNDEFINED, at)?,
            _ if h.len == UNDEFINED => self.push(Kind::Sequence, UNDEFINED, at)?,
            _ if h.sq || self.implicit_sequence(h.len) => self.push(Kind::Sequence, h.len, at)?,
            tag => {
                fits(h.len, self.pos, self.top().end, at)?;
                if tag != PIXEL_DATA {
                    capped(h.len, at)?;
                }
                if h.strings && tag != PIXEL_DATA {
                    let value = &self.b[self.pos..self.pos + h.len as usize];
                    let separators = value.iter().filter(|&&c| c == b'\\').count();
                    self.count(separators as u64, at)?;
                }
                self.pos += h.len as usize;
                if tag == PIXEL_DATA && !nested {
                    self.pixel_bytes = Some(u64::from(h.len));
                }
            }
        }
        Ok(())
    }

    /// In implicit VR the dictionary says which tags are sequences; a defined-length
    /// value that opens with an item is walked as one (dicom-rs can only recurse
    /// into a value that does).
    fn implicit_sequence(&self, len: u32) -> bool {
        self.syntax == Syntax::Implicit
            && len >= 8
            && (len as usize) <= self.top().end - self.pos
            && (
                u16_at(self.b, self.pos, false),
                u16_at(self.b, self.pos + 2, false),
            ) == ITEM
    }

    fn in_sequence(&mut self, h: Header, at: usize) -> Result<(), Refusal> {
        match h.tag {
            ITEM => self.push(Kind::DataSet, h.len, at),
            SEQUENCE_END => {
                self.pop();
                Ok(())
            }
            ITEM_END => Ok(()),
            _ => Err(Refusal::Broken {
                offset: at as u64,
                what: "an element where a sequence item was expected",
            }),
        }
    }

    fn in_fragments(&mut self, h: Header, at: usize) -> Result<(), Refusal> {
        match h.tag {
            ITEM if h.len == UNDEFINED => Err(Refusal::Broken {
                offset: at as u64,
                what: "a pixel data fragment of undefined length",
            }),
            ITEM => {
                self.skip(h.len, at)?;
                if self.frames == 2 {
                    // The first item is the offset table, not pixels.
                    self.pixel_bytes = Some(match self.pixel_bytes {
                        None => 0,
                        Some(n) => n + u64::from(h.len),
                    });
                }
                Ok(())
            }
            SEQUENCE_END => {
                self.pop();
                Ok(())
            }
            _ => Err(Refusal::Broken {
                offset: at as u64,
                what: "an element where a pixel data fragment was expected",
            }),
        }
    }
}

#[cfg(test)]
mod tests;
