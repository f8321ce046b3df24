//! Property tests of the header parser and the segment reader against hostile bytes.
//!
//! Property tests: random and mutated headers fed to the parser, and mutated
//! segment files opened and read. Whatever the bytes, the reader returns an
//! error or a consistent geometry: no panic, no read outside the file.

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use common::layout::{Geometry, Kind, RawHeader, HEADER_SIZE, MAX_SLOTS, PAGE};
use common::segment::Segment;
use common::Name;
use proptest::prelude::*;

/// The bytes of a real, freshly made segment (4 KiB header + 3 pages).
fn template() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let name = Name::new(&format!("prop-template-{}", std::process::id())).unwrap();
        let segment = Segment::create(&name, Geometry::new(Kind::Transfer, 10_000, 1)).unwrap();
        segment.publish().unwrap();
        let bytes = std::fs::read(name.shm_path()).unwrap();
        drop(segment);
        bytes
    })
}

fn unique_name() -> Name {
    static N: AtomicU32 = AtomicU32::new(0);
    Name::new(&format!(
        "prop-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic_the_parser(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        file_len in any::<u64>(),
    ) {
        if let Some(raw) = RawHeader::from_bytes(&bytes) {
            let _ = raw.check(file_len);
        } else {
            prop_assert!(bytes.len() < 128);
        }
    }

    #[test]
    fn a_header_that_passes_describes_the_file_exactly(
        edits in proptest::collection::vec((0usize..128, any::<u8>()), 0..6),
        real_len in any::<bool>(),
        other_len in any::<u64>(),
    ) {
        let mut bytes = template()[..128].to_vec();
        for (at, value) in edits {
            bytes[at] = value;
        }
        let file_len = if real_len { template().len() as u64 } else { other_len };
        let raw = RawHeader::from_bytes(&bytes).unwrap();
        if let Ok(g) = raw.check(file_len) {
            prop_assert_eq!(g.file_len(), Some(file_len));
            prop_assert!(g.capacity <= g.slot_stride);
            prop_assert_eq!(g.slot_stride % PAGE, 0);
            prop_assert!((1..=MAX_SLOTS).contains(&g.slot_count));
            prop_assert!(u64::from(g.elem_size) * g.elem_count <= g.capacity);
            prop_assert!(g.payload_offset(g.slot_count as usize - 1) as u64 + g.capacity <= file_len);
        }
    }

    #[test]
    fn mutated_segment_files_open_and_read_safely(
        edits in proptest::collection::vec((0usize..HEADER_SIZE, any::<u8>()), 1..8),
        cut in proptest::option::of(0usize..20_000),
        len in any::<u64>(),
    ) {
        let mut bytes = template().to_vec();
        for (at, value) in edits {
            bytes[at] = value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.min(bytes.len()));
        }
        let name = unique_name();
        let path = name.shm_path();
        std::fs::write(&path, &bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let outcome = std::panic::catch_unwind(|| {
            if let Ok(segment) = Segment::open(&name) {
                if let Ok(Some(guard)) = segment.try_lock(0) {
                    let recorded = guard.slot().len.load(Ordering::Relaxed);
                    for want in [recorded, len, segment.geometry().capacity] {
                        if let Ok(payload) = guard.payload(want) {
                            assert_eq!(payload.len() as u64, want);
                            assert!(want <= segment.geometry().capacity);
                            // Touch every page of it: must not fault.
                            let sum: u64 = payload.iter().step_by(4096).map(|&b| u64::from(b)).sum();
                            std::hint::black_box(sum);
                        }
                    }
                }
            }
        });
        std::fs::remove_file(&path).unwrap();
        prop_assert!(outcome.is_ok(), "the reader panicked");
    }
}
