//! The disk queue on real files: order, restart, damage, and the size bound.

use spanlens_forward::{DiskQueue, QueueConfig, QueueError, RECORD_HEADER};
use std::fs;
use std::path::{Path, PathBuf};

fn config(dir: &Path, segment_bytes: u64, max_bytes: u64) -> QueueConfig {
    QueueConfig {
        dir: dir.to_path_buf(),
        max_bytes,
        segment_bytes,
    }
}

/// Distinct bodies of varying length, so a record read at a wrong offset cannot pass.
fn body(i: usize) -> Vec<u8> {
    format!("record-{i:04}-{}", "x".repeat(i % 37)).into_bytes()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

fn disk_bytes(dir: &Path) -> u64 {
    segments(dir)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

/// Peeks and acks everything left, returning the bodies in order.
fn drain(queue: &DiskQueue) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(record) = queue.peek().unwrap() {
        out.push(record.body);
        queue.ack().unwrap();
    }
    out
}

#[test]
fn order_holds_across_segments_and_a_restart_resumes_after_the_last_ack() {
    let dir = tempfile::tempdir().unwrap();
    let queue = DiskQueue::open(config(dir.path(), 256, 1 << 20)).unwrap();
    for i in 0..50 {
        queue.push(&body(i)).unwrap();
    }
    let pushed = segments(dir.path()).len();
    assert!(
        pushed > 5,
        "50 records over 256-byte segments: {pushed} files"
    );
    assert_eq!(queue.stats().records, 50);
    for i in 0..20 {
        let record = queue.peek().unwrap().unwrap();
        assert_eq!(record.body, body(i));
        // Peeking again without an ack gives the same record.
        assert_eq!(queue.peek().unwrap().unwrap().body, body(i));
        queue.ack().unwrap();
    }
    assert!(
        segments(dir.path()).len() < pushed,
        "consumed segments are deleted"
    );
    let stats = queue.stats();
    assert_eq!(stats.records, 30);
    let expected_bytes: u64 = (20..50).map(|i| RECORD_HEADER + body(i).len() as u64).sum();
    assert_eq!(stats.bytes, expected_bytes);
    // Peeked but not acknowledged: it must come again after the restart.
    assert_eq!(queue.peek().unwrap().unwrap().body, body(20));
    drop(queue);

    let queue = DiskQueue::open(config(dir.path(), 256, 1 << 20)).unwrap();
    assert_eq!(queue.stats().records, 30);
    assert_eq!(queue.stats().bytes, expected_bytes);
    for i in 20..35 {
        assert_eq!(queue.peek().unwrap().unwrap().body, body(i));
        queue.ack().unwrap();
    }
    drop(queue);

    let queue = DiskQueue::open(config(dir.path(), 256, 1 << 20)).unwrap();
    queue.push(b"after the second restart").unwrap();
    let rest = drain(&queue);
    let mut expected: Vec<Vec<u8>> = (35..50).map(body).collect();
    expected.push(b"after the second restart".to_vec());
    assert_eq!(rest, expected);
    let stats = queue.stats();
    assert_eq!((stats.records, stats.bytes), (0, 0));
    assert_eq!(stats.oldest_enqueued_at, None);
    assert_eq!(stats.corrupt_cuts, 0);
    drop(queue);

    let queue = DiskQueue::open(config(dir.path(), 256, 1 << 20)).unwrap();
    assert_eq!(
        queue.peek().unwrap(),
        None,
        "nothing acknowledged comes back"
    );
    assert!(segments(dir.path()).len() <= 1);
}

#[test]
fn the_oldest_enqueue_time_follows_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let queue = DiskQueue::open(config(dir.path(), 4096, 1 << 20)).unwrap();
    assert_eq!(queue.stats().oldest_enqueued_at, None);
    let before = std::time::SystemTime::now();
    queue.push(b"one").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    queue.push(b"two").unwrap();
    let first = queue.stats().oldest_enqueued_at.unwrap();
    assert!(first >= before - std::time::Duration::from_millis(1));
    assert_eq!(queue.peek().unwrap().unwrap().enqueued_at, first);
    queue.ack().unwrap();
    let second = queue.stats().oldest_enqueued_at.unwrap();
    assert!(second > first);
    drop(queue);
    let queue = DiskQueue::open(config(dir.path(), 4096, 1 << 20)).unwrap();
    assert_eq!(queue.stats().oldest_enqueued_at, Some(second));
}

#[test]
fn a_torn_tail_is_cut_off_and_counted_and_pushing_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let queue = DiskQueue::open(config(dir.path(), 4096, 1 << 20)).unwrap();
    for i in 0..10 {
        queue.push(&body(i)).unwrap();
    }
    drop(queue);
    let files = segments(dir.path());
    assert_eq!(files.len(), 1);
    let last = files.last().unwrap();
    let len = fs::metadata(last).unwrap().len();
    // Cut the last record in the middle of its body, as a crash during the write would.
    let cut_to = len - 5;
    fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(cut_to)
        .unwrap();

    let queue = DiskQueue::open(config(dir.path(), 4096, 1 << 20)).unwrap();
    let stats = queue.stats();
    assert_eq!(stats.records, 9);
    assert_eq!(stats.corrupt_cuts, 1);
    assert_eq!(
        stats.corrupt_bytes,
        RECORD_HEADER + body(9).len() as u64 - 5
    );
    queue.push(b"after").unwrap();
    queue.push(b"the cut").unwrap();
    let mut expected: Vec<Vec<u8>> = (0..9).map(body).collect();
    expected.push(b"after".to_vec());
    expected.push(b"the cut".to_vec());
    assert_eq!(drain(&queue), expected);
    drop(queue);
    let queue = DiskQueue::open(config(dir.path(), 4096, 1 << 20)).unwrap();
    assert_eq!(queue.stats().corrupt_cuts, 0, "the repair is on disk");
}

#[test]
fn a_torn_record_header_is_cut_off_too() {
    let dir = tempfile::tempdir().unwrap();
    let queue = DiskQueue::open(config(dir.path(), 4096, 1 << 20)).unwrap();
    queue.push(b"whole").unwrap();
    drop(queue);
    let file = segments(dir.path()).pop().unwrap();
    // Half a header of a second record.
    let mut bytes = fs::read(&file).unwrap();
    bytes.extend_from_slice(&[7, 0, 0, 0, 1, 2]);
    fs::write(&file, bytes).unwrap();
    let queue = DiskQueue::open(config(dir.path(), 4096, 1 << 20)).unwrap();
    assert_eq!(queue.stats().corrupt_cuts, 1);
    assert_eq!(queue.stats().corrupt_bytes, 6);
    queue.push(b"next").unwrap();
    assert_eq!(drain(&queue), vec![b"whole".to_vec(), b"next".to_vec()]);
}

#[test]
fn a_flipped_byte_cuts_its_segment_there_and_later_segments_survive() {
    let dir = tempfile::tempdir().unwrap();
    let queue = DiskQueue::open(config(dir.path(), 256, 1 << 20)).unwrap();
    for i in 0..30 {
        queue.push(&body(i)).unwrap();
    }
    drop(queue);
    let files = segments(dir.path());
    assert!(files.len() >= 3);
    // Count the records of the first segment, then damage the body of its second record.
    let first = fs::read(&files[0]).unwrap();
    let mut offsets = Vec::new();
    let mut pos = 8usize;
    while pos < first.len() {
        offsets.push(pos);
        let len = u32::from_le_bytes(first[pos..pos + 4].try_into().unwrap()) as usize;
        pos += RECORD_HEADER as usize + len;
    }
    let in_first = offsets.len();
    assert!(in_first >= 3);
    let mut damaged = first.clone();
    damaged[offsets[1] + RECORD_HEADER as usize + 2] ^= 0x20;
    fs::write(&files[0], &damaged).unwrap();

    let queue = DiskQueue::open(config(dir.path(), 256, 1 << 20)).unwrap();
    let stats = queue.stats();
    assert_eq!(stats.corrupt_cuts, 1);
    assert_eq!(stats.corrupt_bytes, (first.len() - offsets[1]) as u64);
    assert_eq!(stats.records, 30 - (in_first as u64 - 1));
    queue.push(b"later push").unwrap();
    let mut expected = vec![body(0)];
    expected.extend((in_first..30).map(body));
    expected.push(b"later push".to_vec());
    assert_eq!(drain(&queue), expected);
}

#[test]
fn damage_found_while_reading_is_cut_off_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let queue = DiskQueue::open(config(dir.path(), 256, 1 << 20)).unwrap();
    for i in 0..30 {
        queue.push(&body(i)).unwrap();
    }
    let files = segments(dir.path());
    // Damage the first segment's first record behind the open queue's back.
    let mut bytes = fs::read(&files[0]).unwrap();
    let in_first = {
        let (mut pos, mut n) = (8usize, 0);
        while pos < bytes.len() {
            let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
            pos += RECORD_HEADER as usize + len;
            n += 1;
        }
        n
    };
    bytes[8 + RECORD_HEADER as usize] ^= 1;
    fs::write(&files[0], &bytes).unwrap();
    let rest = drain(&queue);
    assert_eq!(rest, (in_first..30).map(body).collect::<Vec<_>>());
    let stats = queue.stats();
    assert_eq!(stats.corrupt_cuts, 1);
    assert_eq!(stats.corrupt_bytes, bytes.len() as u64 - 8);
}

#[test]
fn a_damaged_segment_header_removes_that_segment_only() {
    let dir = tempfile::tempdir().unwrap();
    let queue = DiskQueue::open(config(dir.path(), 256, 1 << 20)).unwrap();
    for i in 0..30 {
        queue.push(&body(i)).unwrap();
    }
    drop(queue);
    let files = segments(dir.path());
    let mut bytes = fs::read(&files[0]).unwrap();
    bytes[0] ^= 0xff;
    fs::write(&files[0], &bytes).unwrap();
    let queue = DiskQueue::open(config(dir.path(), 256, 1 << 20)).unwrap();
    assert_eq!(queue.stats().corrupt_cuts, 1);
    assert_eq!(queue.stats().corrupt_bytes, bytes.len() as u64);
    let rest = drain(&queue);
    assert!(!rest.is_empty());
    assert_eq!(rest.last().unwrap(), &body(29));
    assert!(!rest.contains(&body(0)));
}

#[test]
fn a_damaged_cursor_restarts_at_the_oldest_record_rather_than_losing_any() {
    let dir = tempfile::tempdir().unwrap();
    let queue = DiskQueue::open(config(dir.path(), 1 << 16, 1 << 20)).unwrap();
    for i in 0..5 {
        queue.push(&body(i)).unwrap();
    }
    queue.peek().unwrap();
    queue.ack().unwrap();
    queue.peek().unwrap();
    queue.ack().unwrap();
    drop(queue);
    let cursor = dir.path().join("cursor");
    let mut bytes = fs::read(&cursor).unwrap();
    bytes[12] ^= 1;
    fs::write(&cursor, &bytes).unwrap();
    let queue = DiskQueue::open(config(dir.path(), 1 << 16, 1 << 20)).unwrap();
    assert_eq!(drain(&queue), (0..5).map(body).collect::<Vec<_>>());
}

#[test]
fn past_max_bytes_the_oldest_segments_go_and_exactly_their_records_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, max) = (1024, 4096);
    let queue = DiskQueue::open(config(dir.path(), segment, max)).unwrap();
    let record = |i: usize| format!("{i:0100}").into_bytes();
    // Deliver a few first, so dropped counts only what was still undelivered.
    for i in 0..3 {
        queue.push(&record(i)).unwrap();
    }
    for _ in 0..3 {
        queue.peek().unwrap();
        queue.ack().unwrap();
    }
    let total = 200;
    for i in 3..total {
        queue.push(&record(i)).unwrap();
        assert!(disk_bytes(dir.path()) <= max, "bound kept after push {i}");
    }
    let stats = queue.stats();
    assert!(stats.dropped_records > 0);
    let per_segment = (segment - 8) / (RECORD_HEADER + 100);
    // Whole segments go: every one but the first (which had three delivered) holds `per_segment`.
    assert_eq!((stats.dropped_records + 3) % per_segment, 0, "{stats:?}");
    assert_eq!(
        stats.dropped_bytes,
        stats.dropped_records * (RECORD_HEADER + 100)
    );
    assert_eq!(stats.records + stats.dropped_records + 3, total as u64);
    let kept = drain(&queue);
    let first_kept = total - kept.len();
    assert_eq!(
        kept,
        (first_kept..total).map(record).collect::<Vec<_>>(),
        "the newest records are kept, in order"
    );
}

#[test]
fn an_ack_after_the_peeked_record_was_dropped_skips_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let queue = DiskQueue::open(config(dir.path(), 256, 1024)).unwrap();
    let record = |i: usize| format!("{i:040}").into_bytes();
    queue.push(&record(0)).unwrap();
    // Being sent while the producer fills the queue past its bound...
    assert_eq!(queue.peek().unwrap().unwrap().body, record(0));
    let mut pushed = 1;
    while queue.stats().dropped_records == 0 {
        queue.push(&record(pushed)).unwrap();
        pushed += 1;
    }
    let before = queue.stats();
    // ...so its ack arrives after it was dropped: the new head must stay.
    queue.ack().unwrap();
    assert_eq!(queue.stats().records, before.records);
    let first_kept = pushed - before.records as usize;
    assert_eq!(
        drain(&queue),
        (first_kept..pushed).map(record).collect::<Vec<_>>()
    );
}

#[test]
fn a_record_that_can_never_fit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let queue = DiskQueue::open(config(dir.path(), 256, 1024)).unwrap();
    assert!(matches!(
        queue.push(&vec![0u8; 1024]),
        Err(QueueError::TooLarge { .. })
    ));
    // A record larger than a segment but within max_bytes gets a segment of its own.
    queue.push(&vec![1u8; 600]).unwrap();
    queue.push(b"small").unwrap();
    assert_eq!(drain(&queue), vec![vec![1u8; 600], b"small".to_vec()]);
}

#[test]
fn bad_configurations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        DiskQueue::open(QueueConfig::default()),
        Err(QueueError::Config(_))
    ));
    assert!(matches!(
        DiskQueue::open(config(dir.path(), 1024, 512)),
        Err(QueueError::Config(_))
    ));
    let defaults = QueueConfig::new(dir.path());
    assert_eq!(defaults.max_bytes, 256 << 20);
    assert_eq!(defaults.segment_bytes, 8 << 20);
}
