//! The walk against hand-written DICOM: valid files pass (and dicom-rs reads them),
//! deep nesting, lying lengths and oversized elements are refused, arbitrary bytes
//! never panic, and the walk allocates nothing sized from the file.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;

use super::*;

/// Records the largest allocation made on a thread while that thread tracks.
struct Tracking;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    if TRACKING.with(Cell::get) {
        LARGEST.with(|l| l.set(l.get().max(size)));
    }
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// The walk's result and the largest allocation it made.
fn walk_measured(bytes: &[u8]) -> (Result<Option<Walked>, Refusal>, usize) {
    let _ = TransferSyntaxRegistry.get(EXPLICIT_LE); // the registry's own one-time set-up
    LARGEST.with(|l| l.set(0));
    TRACKING.with(|t| t.set(true));
    let result = walk(bytes);
    TRACKING.with(|t| t.set(false));
    (result, LARGEST.with(Cell::get))
}

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const SQ_TAG: (u16, u16) = (0x0008, 0x1115);

/// An element header in explicit VR little endian (items and delimiters have no VR).
fn head(tag: (u16, u16), vr: &[u8; 2], len: u32) -> Vec<u8> {
    let mut out = [tag.0.to_le_bytes(), tag.1.to_le_bytes()].concat();
    if tag.0 == 0xFFFE {
        out.extend(len.to_le_bytes());
    } else if SHORT_VRS.contains(&vr) {
        out.extend(vr);
        out.extend((len as u16).to_le_bytes());
    } else {
        out.extend(vr);
        out.extend([0, 0]);
        out.extend(len.to_le_bytes());
    }
    out
}

fn element(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    [head(tag, vr, value.len() as u32), value.to_vec()].concat()
}

fn implicit(tag: (u16, u16), len: u32) -> Vec<u8> {
    [tag.0.to_le_bytes(), tag.1.to_le_bytes()]
        .concat()
        .into_iter()
        .chain(len.to_le_bytes())
        .collect()
}

fn uid(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    if v.len() % 2 == 1 {
        v.push(0);
    }
    v
}

/// Preamble, `DICM`, a meta group naming `ts`, then `data_set`.
fn file(ts: &str, data_set: &[u8]) -> Vec<u8> {
    let group = [
        element((2, 1), b"OB", &[0, 1]),
        element((2, 2), b"UI", &uid("1.2.840.10008.5.1.4.1.1.2")),
        element((2, 3), b"UI", &uid("1.2.3.4")),
        element((2, 0x10), b"UI", &uid(ts)),
    ]
    .concat();
    let mut out = vec![0u8; 128];
    out.extend(b"DICM");
    out.extend(element((2, 0), b"UL", &(group.len() as u32).to_le_bytes()));
    out.extend(group);
    out.extend(data_set);
    out
}

/// A small image: a few attributes, a nested sequence, 2x2 16-bit native pixels.
fn image_data_set() -> Vec<u8> {
    [
        element((0x0008, 0x0060), b"CS", b"CT"),
        head(SQ_TAG, b"SQ", UNDEFINED),
        head(ITEM, b"  ", UNDEFINED),
        element((0x0008, 0x1150), b"UI", &uid("1.2.3")),
        head(ITEM_END, b"  ", 0),
        head(SEQUENCE_END, b"  ", 0),
        element((0x0028, 0x0010), b"US", &2u16.to_le_bytes()),
        element((0x0028, 0x0011), b"US", &2u16.to_le_bytes()),
        element((0x0028, 0x0100), b"US", &16u16.to_le_bytes()),
        element((0x7FE0, 0x0010), b"OW", &[1, 0, 2, 0, 3, 0, 4, 0]),
    ]
    .concat()
}

/// `depth` undefined-length sequences, each holding one undefined-length item, never closed.
fn nested(depth: usize) -> Vec<u8> {
    let level = [head(SQ_TAG, b"SQ", UNDEFINED), head(ITEM, b"  ", UNDEFINED)].concat();
    level.repeat(depth)
}

#[test]
fn a_valid_file_passes_and_dicom_rs_reads_it_too() {
    let bytes = file(EXPLICIT_LE, &image_data_set());
    let walked = walk(&bytes).unwrap().unwrap();
    assert_eq!(walked.pixel_bytes, Some(8));
    let obj = dicom_object::OpenFileOptions::new()
        .from_reader(bytes.as_slice())
        .unwrap();
    assert_eq!(
        obj.element(dicom_object::Tag(0x0028, 0x0010))
            .unwrap()
            .to_int::<u16>()
            .unwrap(),
        2
    );
    // Without the pixel data: none measured.
    let data_set = image_data_set();
    let header_only = file(EXPLICIT_LE, &data_set[..data_set.len() - 20]);
    assert_eq!(walk(&header_only).unwrap().unwrap().pixel_bytes, None);
}

#[test]
fn no_dicm_or_no_meta_group_is_not_dicom() {
    assert_eq!(walk(b""), Ok(None));
    assert_eq!(walk(&[7u8; 500]), Ok(None));
    let mut no_group_length = vec![0u8; 128];
    no_group_length.extend(b"DICM");
    no_group_length.extend(element((2, 0x10), b"UI", &uid(EXPLICIT_LE)));
    assert_eq!(walk(&no_group_length), Ok(None));
    assert_eq!(walk(&file("1.2.3.4.5.6", &image_data_set())), Ok(None));
}

#[test]
fn nesting_is_read_to_64_levels_and_refused_beyond() {
    let closed = |depth: usize| {
        let close = [head(ITEM_END, b"  ", 0), head(SEQUENCE_END, b"  ", 0)].concat();
        file(EXPLICIT_LE, &[nested(depth), close.repeat(depth)].concat())
    };
    assert!(walk(&closed(MAX_DEPTH)).unwrap().is_some());
    // What passes, dicom-rs reads on a test thread's (2 MiB) stack.
    let read = dicom_object::OpenFileOptions::new().from_reader(closed(MAX_DEPTH).as_slice());
    assert!(read.is_ok(), "{:?}", read.err());
    assert!(matches!(
        walk(&closed(MAX_DEPTH + 1)),
        Err(Refusal::TooDeep { .. })
    ));
    // The file of the report: 200 000 levels in 4 MB, refused at once, nothing allocated.
    let hostile = file(EXPLICIT_LE, &nested(200_000));
    assert!(hostile.len() > 4_000_000);
    let (result, largest) = walk_measured(&hostile);
    assert!(matches!(result, Err(Refusal::TooDeep { .. })), "{result:?}");
    assert!(largest < 64 << 10, "the walk allocated {largest} bytes");
}

#[test]
fn implicit_vr_nesting_of_defined_length_is_refused_too() {
    // Innermost first: each level is a defined-length sequence holding one item.
    let mut inner = Vec::new();
    for _ in 0..100 {
        let item = [implicit(ITEM, inner.len() as u32), inner].concat();
        inner = [implicit(SQ_TAG, item.len() as u32), item].concat();
    }
    let result = walk(&file(IMPLICIT_LE, &inner));
    assert!(matches!(result, Err(Refusal::TooDeep { .. })), "{result:?}");
}

#[test]
fn a_length_past_the_end_is_refused_without_allocating_it() {
    // The report's 1 KB file: one element declaring 4 GiB.
    let data_set = [
        element((0x0008, 0x0060), b"CS", b"CT"),
        head((0x0009, 0x1001), b"OB", 0xFFFF_FFF0),
        vec![0u8; 900],
    ]
    .concat();
    let bytes = file(EXPLICIT_LE, &data_set);
    assert!(bytes.len() < 1200);
    let (result, largest) = walk_measured(&bytes);
    assert!(
        matches!(
            result,
            Err(Refusal::PastEnd {
                declared: 0xFFFF_FFF0,
                left: 900,
                ..
            })
        ),
        "{result:?}"
    );
    assert!(largest < 64 << 10, "the walk allocated {largest} bytes");
    // An element longer than its defined-length item, inside the file.
    let item = [element((0x0008, 0x1150), b"UI", &uid("1.2.3")), vec![0; 64]].concat();
    let lying = [head(SQ_TAG, b"SQ", 8 + 4), head(ITEM, b"  ", 4), item].concat();
    let result = walk(&file(EXPLICIT_LE, &lying));
    assert!(
        matches!(
            result,
            Err(Refusal::PastEnd { .. }) | Err(Refusal::Broken { .. })
        ),
        "{result:?}"
    );
    // A meta element that lies.
    let mut meta_lie = file(EXPLICIT_LE, &[]);
    meta_lie.extend(head((2, 0x13), b"OB", 1 << 30));
    let group_at = 132 + 8;
    let len = u32::from_le_bytes(meta_lie[group_at..group_at + 4].try_into().unwrap());
    meta_lie[group_at..group_at + 4].copy_from_slice(&(len + 12).to_le_bytes());
    assert!(matches!(walk(&meta_lie), Err(Refusal::PastEnd { .. })));
}

#[test]
fn one_element_over_the_cap_is_refused_but_pixel_data_is_not_capped() {
    let big = vec![0u8; MAX_ELEMENT_BYTES as usize + 2];
    let result = walk(&file(EXPLICIT_LE, &element((0x0009, 0x1001), b"OB", &big)));
    assert!(
        matches!(result, Err(Refusal::TooLarge { .. })),
        "{result:?}"
    );
    let pixels = walk(&file(EXPLICIT_LE, &element((0x7FE0, 0x0010), b"OB", &big)));
    assert_eq!(pixels.unwrap().unwrap().pixel_bytes, Some(big.len() as u64));
}

#[test]
fn millions_of_elements_or_string_values_are_refused() {
    let too_many = |data_set: &[u8], ts: &str| {
        let result = walk(&file(ts, data_set));
        assert!(matches!(result, Err(Refusal::TooMany { .. })), "{result:?}");
    };
    // One UC element of backslashes: dicom-rs would hold 2^20 + 2 empty strings.
    let slashes = vec![b'\\'; MAX_VALUES as usize + 1];
    too_many(&element((0x0009, 0x1002), b"UC", &slashes), EXPLICIT_LE);
    // The same in implicit VR, where the VR is unknown here.
    let value = [implicit((0x0008, 0x0060), slashes.len() as u32), slashes].concat();
    too_many(&value, IMPLICIT_LE);
    // 2^20 + 1 empty elements, 8 bytes each.
    let empty: Vec<u8> = (0..=MAX_VALUES as u32)
        .flat_map(|k| head((0x0011 + 2 * (k >> 16) as u16, k as u16), b"LO", 0))
        .collect();
    too_many(&empty, EXPLICIT_LE);
    // Backslashes in a binary VR are bytes, not strings.
    let ob = element(
        (0x0009, 0x1002),
        b"OB",
        &vec![b'\\'; MAX_VALUES as usize + 2],
    );
    assert!(walk(&file(EXPLICIT_LE, &ob)).unwrap().is_some());
}

#[test]
fn encapsulated_fragments_are_summed_and_checked() {
    let fragments = |last: u32| {
        [
            head(PIXEL_DATA, b"OB", UNDEFINED),
            head(ITEM, b"  ", 0),
            element(ITEM, b"  ", &[9; 6]),
            head(ITEM, b"  ", last),
            vec![9; 4],
            head(SEQUENCE_END, b"  ", 0),
        ]
        .concat()
    };
    let ts = "1.2.840.10008.1.2.4.50";
    assert_eq!(
        walk(&file(ts, &fragments(4))).unwrap().unwrap().pixel_bytes,
        Some(10)
    );
    assert!(matches!(
        walk(&file(ts, &fragments(1 << 31))),
        Err(Refusal::PastEnd { .. })
    ));
    assert!(matches!(
        walk(&file(ts, &fragments(UNDEFINED))),
        Err(Refusal::Broken { .. })
    ));
}

#[test]
fn big_endian_and_deflated_data_sets_are_walked() {
    let be = [0x0008u16.to_be_bytes(), 0x0060u16.to_be_bytes()]
        .concat()
        .into_iter()
        .chain(*b"CS")
        .chain(0xFFF0u16.to_be_bytes())
        .collect::<Vec<u8>>();
    assert!(matches!(
        walk(&file(EXPLICIT_BE, &be)),
        Err(Refusal::PastEnd {
            declared: 0xFFF0,
            ..
        })
    ));

    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut deflate, &image_data_set()).unwrap();
    let bytes = file(DEFLATED_LE, &deflate.finish().unwrap());
    let (result, largest) = walk_measured(&bytes);
    assert_eq!(result.unwrap().unwrap().pixel_bytes, Some(8));
    assert!(
        largest > 0,
        "inflating allocates: the tracking allocator sees it"
    );
    assert!(dicom_object::OpenFileOptions::new()
        .from_reader(bytes.as_slice())
        .is_ok());
    let broken = file(DEFLATED_LE, &[0xFF; 64]);
    assert_eq!(walk(&broken), Err(Refusal::Inflate { too_large: false }));
}

#[test]
fn a_refusal_names_the_entry_the_rule_and_the_fix_and_no_bytes() {
    let mut bytes = file(EXPLICIT_LE, &nested(100));
    bytes[..128].copy_from_slice(&[b'Z'; 128]);
    let e = check(&bytes, Path::new("/in/series"), "IM0042")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/in/series: entry IM0042: sequences nest deeper than 64"),
        "{e}"
    );
    assert!(e.contains("Fix: "), "{e}");
    assert!(!e.contains("ZZ"), "{e}");
}

/// Levels of nesting, each undefined (`true`) or of defined length, in either VR.
fn deep_file(levels: &[bool], explicit: bool) -> Vec<u8> {
    let hdr = |tag, len| {
        if explicit {
            head(tag, b"SQ", len)
        } else {
            implicit(tag, len)
        }
    };
    let mut inner = Vec::new();
    for &undefined in levels.iter().rev() {
        inner = if undefined {
            [hdr(SQ_TAG, UNDEFINED), hdr(ITEM, UNDEFINED), inner].concat()
        } else {
            let item = [hdr(ITEM, inner.len() as u32), inner].concat();
            [hdr(SQ_TAG, item.len() as u32), item].concat()
        };
    }
    file(if explicit { EXPLICIT_LE } else { IMPLICIT_LE }, &inner)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn deep_nesting_is_always_refused(
        levels in proptest::collection::vec(any::<bool>(), MAX_DEPTH + 1..400),
        explicit in any::<bool>(),
    ) {
        let bytes = deep_file(&levels, explicit);
        let (result, largest) = walk_measured(&bytes);
        prop_assert!(matches!(result, Err(Refusal::TooDeep { .. })), "{:?}", result);
        prop_assert!(largest < 64 << 10, "allocated {}", largest);
    }

    #[test]
    fn lying_lengths_are_always_refused(
        prefix in 0usize..4,
        tail in 0usize..2000,
        excess in 1u32..u32::MAX - 4000,
        vr in prop::sample::select(vec![*b"OB", *b"UN", *b"LO", *b"UT", *b"SQ"]),
    ) {
        let elements = image_data_set();
        let cut = [0, 10, 30, elements.len() - 20][prefix];
        let declared = if SHORT_VRS.contains(&&vr) {
            (tail as u32 + excess % 60_000).min(0xFFFE) + 1
        } else {
            tail as u32 + excess
        };
        let declared = declared.max(tail as u32 + 1);
        let data_set = [&elements[..cut], &head((0x0009, 0x1001), &vr, declared), &vec![0u8; tail][..]].concat();
        let bytes = file(EXPLICIT_LE, &data_set);
        let (result, largest) = walk_measured(&bytes);
        prop_assert!(matches!(result, Err(Refusal::PastEnd { .. })), "{:?}", result);
        prop_assert!(largest <= bytes.len().max(64 << 10), "allocated {}", largest);
    }

    #[test]
    fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..3000), framed in any::<bool>()) {
        let bytes = if framed { file(EXPLICIT_LE, &raw) } else { raw };
        let (_, largest) = walk_measured(&bytes);
        prop_assert!(largest <= bytes.len().max(64 << 10), "allocated {}", largest);
    }

    #[test]
    fn arbitrary_bytes_in_any_syntax_never_panic(
        raw in proptest::collection::vec(any::<u8>(), 0..3000),
        ts in prop::sample::select(vec![IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, "1.2.840.10008.1.2.4.50"]),
    ) {
        let _ = walk(&file(ts, &raw));
    }
}
