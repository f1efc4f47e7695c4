//! The durable queue: append-only segment files plus a cursor naming the first undelivered
//! record. See the crate's README for the byte layout and what recovery does.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Opens every segment file, so a stray file in the directory is never taken for one.
const SEGMENT_MAGIC: &[u8; 8] = b"SLFWDQ01";
/// Bytes before a segment's first record.
pub(crate) const SEGMENT_HEADER: u64 = SEGMENT_MAGIC.len() as u64;
/// Per record: body length (u32), crc32 (u32), enqueue time in µs since the epoch (u64).
pub const RECORD_HEADER: u64 = 16;
/// Opens the cursor file; a cursor with another start is treated as damaged.
const CURSOR_MAGIC: &[u8; 8] = b"SLFWDC01";
const CURSOR_LEN: usize = 8 + 8 + 8 + 4;
const CURSOR_FILE: &str = "cursor";
const CURSOR_TMP: &str = "cursor.tmp";
const SEGMENT_SUFFIX: &str = ".seg";

/// Default bound on the bytes a queue keeps on disk.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Default size at which a new segment file is started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// Where a queue lives and how much disk it may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// The queue's own directory (created if missing); one open queue per directory.
    pub dir: PathBuf,
    /// Most bytes all segment files may hold together; past it the oldest segments go.
    pub max_bytes: u64,
    /// Size at which the writer starts a new segment: the unit in which space is freed.
    pub segment_bytes: u64,
}

impl QueueConfig {
    /// A queue in `dir` with the default sizes.
    pub fn new(dir: impl Into<PathBuf>) -> QueueConfig {
        QueueConfig {
            dir: dir.into(),
            ..QueueConfig::default()
        }
    }
}

impl Default for QueueConfig {
    /// Default sizes and no directory: set `dir` before opening (an empty one is refused).
    fn default() -> QueueConfig {
        QueueConfig {
            dir: PathBuf::new(),
            max_bytes: DEFAULT_MAX_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The file system refused something; the queue is left consistent.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and on which path.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// One record could never fit, even in an empty queue.
    #[error("a record of {size} bytes does not fit a queue of at most {max} bytes")]
    TooLarge {
        /// Bytes the record would take on disk.
        size: u64,
        /// The queue's `max_bytes`.
        max: u64,
    },
    /// The configuration cannot work.
    #[error("invalid queue configuration: {0}")]
    Config(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> QueueError {
    let context = context.into();
    move |source| QueueError::Io { context, source }
}

/// One queued body and when it was enqueued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The bytes given to `push`.
    pub body: Vec<u8>,
    /// When `push` stored it (to the microsecond).
    pub enqueued_at: SystemTime,
}

/// What a queue holds and what it has lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Records not yet acknowledged.
    pub records: u64,
    /// Their bytes on disk, record headers included.
    pub bytes: u64,
    /// Undelivered records deleted to keep the queue within `max_bytes`.
    pub dropped_records: u64,
    /// Their bytes, record headers included.
    pub dropped_bytes: u64,
    /// Times a damaged or torn stretch was cut off (each loses one record or more).
    pub corrupt_cuts: u64,
    /// Bytes cut off for damage.
    pub corrupt_bytes: u64,
    /// Enqueue time of the head record, if any.
    pub oldest_enqueued_at: Option<SystemTime>,
}

/// A bounded, crash-safe FIFO of byte records on disk.
///
/// One thread may push while another peeks and acks; everything is serialised by one lock, held
/// only for the file operation at hand.
pub struct DiskQueue {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for DiskQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("DiskQueue")
            .field("dir", &inner.dir)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Segment {
    id: u64,
    /// Valid bytes in the file, its header included.
    len: u64,
    /// Records in the file, consumed ones included.
    records: u64,
}

/// Where the consumer is, and what `ack` acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    segment: u64,
    offset: u64,
}

struct Head {
    len: u64,
    enqueued_at: SystemTime,
    body: Option<Vec<u8>>,
}

struct Inner {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Oldest first; the last is the one being appended to.
    segments: VecDeque<Segment>,
    /// Append handle on the last segment, opened on first use.
    writer: Option<File>,
    /// Offset of the head record in the first segment.
    head_offset: u64,
    /// Records of the first segment before `head_offset`.
    head_consumed: u64,
    reader: Option<(u64, File)>,
    /// The record the last `peek` returned: `ack` only advances past that very record, so a
    /// head dropped for space while it was being sent does not make `ack` skip its successor.
    peeked: Option<(Position, u64)>,
    oldest: Option<SystemTime>,
    next_id: u64,
    dropped_records: u64,
    dropped_bytes: u64,
    corrupt_cuts: u64,
    corrupt_bytes: u64,
}

impl DiskQueue {
    /// Opens (or creates) the queue in `config.dir`, recovering from whatever a crash left.
    ///
    /// Every record after the cursor is checked (length and crc32); from the first bad one the
    /// segment is cut off and the loss counted in [`QueueStats::corrupt_cuts`] and
    /// [`QueueStats::corrupt_bytes`].
    pub fn open(config: QueueConfig) -> Result<DiskQueue, QueueError> {
        if config.dir.as_os_str().is_empty() {
            return Err(QueueError::Config("no queue directory".into()));
        }
        let smallest = SEGMENT_HEADER + RECORD_HEADER + 1;
        if config.segment_bytes < smallest {
            return Err(QueueError::Config(format!(
                "segment_bytes is {}, less than {smallest}",
                config.segment_bytes
            )));
        }
        if config.max_bytes < config.segment_bytes {
            return Err(QueueError::Config(format!(
                "max_bytes ({}) is less than segment_bytes ({})",
                config.max_bytes, config.segment_bytes
            )));
        }
        let dir = config.dir;
        fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let tmp = dir.join(CURSOR_TMP);
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(format!("removing {}", tmp.display()))(e)),
        }
        let mut ids = segment_ids(&dir)?;
        ids.sort_unstable();
        let cursor = read_cursor(&dir);
        let mut inner = Inner {
            next_id: 1,
            dir,
            max_bytes: config.max_bytes,
            segment_bytes: config.segment_bytes,
            segments: VecDeque::new(),
            writer: None,
            head_offset: SEGMENT_HEADER,
            head_consumed: 0,
            reader: None,
            peeked: None,
            oldest: None,
            dropped_records: 0,
            dropped_bytes: 0,
            corrupt_cuts: 0,
            corrupt_bytes: 0,
        };
        if let Some(cursor) = cursor {
            inner.next_id = inner.next_id.max(cursor.segment + 1);
        }
        if let Some(&last) = ids.last() {
            inner.next_id = inner.next_id.max(last + 1);
        }
        for id in ids {
            let path = inner.segment_path(id);
            if cursor.is_some_and(|c| id < c.segment) {
                // Wholly acknowledged before the crash; its deletion had not happened yet.
                remove(&path)?;
                continue;
            }
            let head_at = cursor
                .filter(|c| c.segment == id)
                .map_or(SEGMENT_HEADER, |c| c.offset);
            let Some(scan) = scan_segment(&path, head_at)? else {
                inner.corrupt_bytes += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                inner.corrupt_cuts += 1;
                tracing::warn!(path = %path.display(), "queue segment with a damaged header removed");
                remove(&path)?;
                continue;
            };
            if scan.cut_bytes > 0 {
                inner.corrupt_cuts += 1;
                inner.corrupt_bytes += scan.cut_bytes;
                tracing::warn!(
                    path = %path.display(),
                    bytes = scan.cut_bytes,
                    "damaged or torn records cut off the queue"
                );
            }
            if inner.segments.is_empty() {
                inner.head_offset = scan.head;
                inner.head_consumed = scan.consumed;
            }
            inner.segments.push_back(Segment {
                id,
                len: scan.len,
                records: scan.records,
            });
        }
        inner.skip_exhausted()?;
        inner.make_room(0)?;
        inner.refresh_oldest()?;
        Ok(DiskQueue {
            inner: Mutex::new(inner),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere never leaves the files inconsistent, only the thread's own work undone.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `body`. When the queue would pass `max_bytes`, its oldest whole segments are
    /// deleted first and their undelivered records counted as dropped.
    pub fn push(&self, body: &[u8]) -> Result<(), QueueError> {
        let size = RECORD_HEADER + body.len() as u64;
        let mut inner = self.lock();
        if body.len() > u32::MAX as usize || SEGMENT_HEADER + size > inner.max_bytes {
            return Err(QueueError::TooLarge {
                size,
                max: inner.max_bytes,
            });
        }
        let new_segment = inner.make_room(size)?;
        if new_segment {
            inner.start_segment()?;
        }
        let enqueued_at = SystemTime::now();
        let micros = micros_since_epoch(enqueued_at);
        let mut buf = Vec::with_capacity(size as usize);
        buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
        buf.extend_from_slice(&record_crc(body.len() as u32, micros, body).to_le_bytes());
        buf.extend_from_slice(&micros.to_le_bytes());
        buf.extend_from_slice(body);
        inner.append(&buf)?;
        if inner.oldest.is_none() {
            inner.oldest = Some(from_micros(micros));
        }
        Ok(())
    }

    /// The head record, or `None` when everything was acknowledged. Calling it again without
    /// `ack` returns the same record.
    pub fn peek(&self) -> Result<Option<Record>, QueueError> {
        let mut inner = self.lock();
        let Some(head) = inner.read_head(true)? else {
            return Ok(None);
        };
        let position = inner.head_position();
        inner.peeked = Some((position, head.len));
        // A damaged record cut off on the way changes which record is the oldest.
        inner.oldest = Some(head.enqueued_at);
        Ok(Some(Record {
            body: head.body.unwrap_or_default(),
            enqueued_at: head.enqueued_at,
        }))
    }

    /// Acknowledges the record the last `peek` returned and persists the new cursor (written to
    /// a temporary file, then renamed over the old one), so a restart resumes after it. If that
    /// record was dropped for space in the meantime, nothing else is acknowledged. Without a
    /// preceding `peek`, the current head is acknowledged.
    pub fn ack(&self) -> Result<(), QueueError> {
        let mut inner = self.lock();
        let (position, len) = match inner.peeked.take() {
            Some(peeked) => peeked,
            None => match inner.read_head(false)? {
                Some(head) => (inner.head_position(), head.len),
                None => return Ok(()),
            },
        };
        if inner.segments.is_empty() || inner.head_position() != position {
            return Ok(());
        }
        let next = Position {
            segment: position.segment,
            offset: position.offset + len,
        };
        write_cursor(&inner.dir, next)?;
        inner.head_offset = next.offset;
        inner.head_consumed += 1;
        inner.skip_exhausted()?;
        inner.refresh_oldest()
    }

    /// What the queue holds and has lost since it was opened.
    pub fn stats(&self) -> QueueStats {
        let inner = self.lock();
        let (mut records, mut bytes) = (0, 0);
        for segment in &inner.segments {
            records += segment.records;
            bytes += segment.len - SEGMENT_HEADER;
        }
        if !inner.segments.is_empty() {
            records -= inner.head_consumed;
            bytes -= inner.head_offset - SEGMENT_HEADER;
        }
        QueueStats {
            records,
            bytes,
            dropped_records: inner.dropped_records,
            dropped_bytes: inner.dropped_bytes,
            corrupt_cuts: inner.corrupt_cuts,
            corrupt_bytes: inner.corrupt_bytes,
            oldest_enqueued_at: inner.oldest,
        }
    }
}

impl Inner {
    fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}{SEGMENT_SUFFIX}"))
    }

    fn head_position(&self) -> Position {
        Position {
            segment: self.segments.front().map_or(0, |s| s.id),
            offset: self.head_offset,
        }
    }

    fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// Deletes oldest segments until a record of `size` bytes fits within `max_bytes`; says
    /// whether that record needs a new segment.
    fn make_room(&mut self, size: u64) -> Result<bool, QueueError> {
        loop {
            let new_segment = self.segments.back().is_none_or(|last| {
                last.len > SEGMENT_HEADER && last.len + size > self.segment_bytes
            });
            let needed = size
                + if new_segment && size > 0 {
                    SEGMENT_HEADER
                } else {
                    0
                };
            if self.segments.is_empty() || self.disk_bytes() + needed <= self.max_bytes {
                return Ok(new_segment);
            }
            self.drop_front()?;
        }
    }

    /// Deletes the first segment, counting its undelivered records as dropped.
    fn drop_front(&mut self) -> Result<(), QueueError> {
        let Some(front) = self.segments.pop_front() else {
            return Ok(());
        };
        let records = front.records - self.head_consumed;
        let bytes = front.len - self.head_offset;
        self.dropped_records += records;
        self.dropped_bytes += bytes;
        if records > 0 {
            tracing::warn!(records, bytes, "queue full: oldest records dropped");
        }
        self.forget_segment(front.id);
        self.head_offset = SEGMENT_HEADER;
        self.head_consumed = 0;
        // A cursor still naming this segment is read as "start at the next one".
        remove(&self.segment_path(front.id))?;
        self.refresh_oldest()
    }

    fn forget_segment(&mut self, id: u64) {
        if self.reader.as_ref().is_some_and(|(r, _)| *r == id) {
            self.reader = None;
        }
        if self.segments.is_empty() {
            self.writer = None;
        }
    }

    /// Deletes wholly consumed segments in front of the head, but never the one being written.
    fn skip_exhausted(&mut self) -> Result<(), QueueError> {
        while self.segments.len() > 1 && self.head_offset >= self.segments[0].len {
            let front = self.segments.pop_front().expect("two segments");
            self.forget_segment(front.id);
            self.head_offset = SEGMENT_HEADER;
            self.head_consumed = 0;
            remove(&self.segment_path(front.id))?;
        }
        Ok(())
    }

    fn start_segment(&mut self) -> Result<(), QueueError> {
        let id = self.next_id;
        let path = self.segment_path(id);
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io_err(format!("creating {}", path.display())))?;
        if let Err(e) = file.write_all(SEGMENT_MAGIC) {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(io_err(format!("writing {}", path.display()))(e));
        }
        self.next_id += 1;
        let first = self.segments.is_empty();
        self.segments.push_back(Segment {
            id,
            len: SEGMENT_HEADER,
            records: 0,
        });
        if first {
            self.head_offset = SEGMENT_HEADER;
            self.head_consumed = 0;
        }
        self.writer = Some(file);
        // The previous last segment may now be consumed and deletable.
        self.skip_exhausted()
    }

    fn append(&mut self, buf: &[u8]) -> Result<(), QueueError> {
        let last = self.segments.back().expect("a segment to append to");
        let (id, len) = (last.id, last.len);
        let path = self.segment_path(id);
        if self.writer.is_none() {
            let file = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(io_err(format!("opening {}", path.display())))?;
            self.writer = Some(file);
        }
        let writer = self.writer.as_mut().expect("writer just opened");
        if let Err(e) = writer.write_all(buf) {
            // Leave no partial record behind (recovery would cut it anyway).
            let _ = writer.set_len(len);
            return Err(io_err(format!("appending to {}", path.display()))(e));
        }
        let last = self.segments.back_mut().expect("a segment to append to");
        last.len += buf.len() as u64;
        last.records += 1;
        Ok(())
    }

    fn refresh_oldest(&mut self) -> Result<(), QueueError> {
        self.oldest = self.read_head(false)?.map(|h| h.enqueued_at);
        Ok(())
    }

    /// Reads the head record (its body only if asked), moving past consumed segments and
    /// cutting off a record that fails its checks.
    fn read_head(&mut self, with_body: bool) -> Result<Option<Head>, QueueError> {
        loop {
            self.skip_exhausted()?;
            let Some(front) = self.segments.front() else {
                return Ok(None);
            };
            let (id, seg_len) = (front.id, front.len);
            if self.head_offset >= seg_len {
                return Ok(None);
            }
            let path = self.segment_path(id);
            if self.reader.as_ref().is_none_or(|(r, _)| *r != id) {
                let file =
                    File::open(&path).map_err(io_err(format!("opening {}", path.display())))?;
                self.reader = Some((id, file));
            }
            let offset = self.head_offset;
            let file = &mut self.reader.as_mut().expect("reader just opened").1;
            match read_record(file, offset, seg_len, with_body) {
                Ok(Some(head)) => return Ok(Some(head)),
                Ok(None) => self.cut_head_segment()?,
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => self.cut_head_segment()?,
                Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
            }
        }
    }

    /// A record found damaged while reading: drop the rest of its segment.
    fn cut_head_segment(&mut self) -> Result<(), QueueError> {
        let front = self.segments.front_mut().expect("a head segment");
        let path = self.dir.join(format!("{:020}{SEGMENT_SUFFIX}", front.id));
        let cut = front.len - self.head_offset;
        tracing::warn!(path = %path.display(), bytes = cut, "damaged queue record cut off");
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(self.head_offset))
            .map_err(io_err(format!("truncating {}", path.display())))?;
        front.len = self.head_offset;
        front.records = self.head_consumed;
        self.corrupt_cuts += 1;
        self.corrupt_bytes += cut;
        if self.segments.len() == 1 {
            // Nothing left to read; the next push appends right after the last good record.
            return Ok(());
        }
        self.skip_exhausted()
    }
}

/// Reads the record at `offset`: `Ok(None)` when it fails its length or crc check.
fn read_record(
    file: &mut File,
    offset: u64,
    seg_len: u64,
    with_body: bool,
) -> io::Result<Option<Head>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut header = [0u8; RECORD_HEADER as usize];
    if seg_len - offset < RECORD_HEADER {
        return Ok(None);
    }
    file.read_exact(&mut header)?;
    let (len, crc, micros) = split_header(&header);
    let size = RECORD_HEADER + u64::from(len);
    if size > seg_len - offset {
        return Ok(None);
    }
    let body = if with_body {
        let mut body = vec![0u8; len as usize];
        file.read_exact(&mut body)?;
        if record_crc(len, micros, &body) != crc {
            return Ok(None);
        }
        Some(body)
    } else {
        None
    };
    Ok(Some(Head {
        len: size,
        enqueued_at: from_micros(micros),
        body,
    }))
}

fn split_header(header: &[u8; RECORD_HEADER as usize]) -> (u32, u32, u64) {
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let micros = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    (len, crc, micros)
}

/// The checksum covers the length and time as well as the body, so damage anywhere in a record
/// is caught.
fn record_crc(len: u32, micros: u64, body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(&micros.to_le_bytes());
    hasher.update(body);
    hasher.finalize()
}

fn micros_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn from_micros(micros: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(micros)
}

struct Scan {
    /// Valid bytes after any cut.
    len: u64,
    records: u64,
    cut_bytes: u64,
    /// The record boundary at or before the cursor's offset.
    head: u64,
    /// Records before `head`.
    consumed: u64,
}

/// Checks every record of a segment, truncating it at the first bad one. `None` when the
/// segment's own header is damaged (the caller removes the file).
fn scan_segment(path: &Path, head_at: u64) -> Result<Option<Scan>, QueueError> {
    let ctx = || format!("checking {}", path.display());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(ctx()))?;
    let file_len = file.metadata().map_err(io_err(ctx()))?.len();
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut magic = [0u8; SEGMENT_HEADER as usize];
    if file_len < SEGMENT_HEADER {
        if file_len == 0 {
            // Created but never written: an empty segment, repaired in place.
            let mut file = reader.into_inner();
            file.write_all(SEGMENT_MAGIC).map_err(io_err(ctx()))?;
            return Ok(Some(Scan {
                len: SEGMENT_HEADER,
                records: 0,
                cut_bytes: 0,
                head: SEGMENT_HEADER,
                consumed: 0,
            }));
        }
        return Ok(None);
    }
    reader.read_exact(&mut magic).map_err(io_err(ctx()))?;
    if &magic != SEGMENT_MAGIC {
        return Ok(None);
    }
    let mut scan = Scan {
        len: SEGMENT_HEADER,
        records: 0,
        cut_bytes: 0,
        head: SEGMENT_HEADER,
        consumed: 0,
    };
    let mut body = Vec::new();
    let mut pos = SEGMENT_HEADER;
    while pos < file_len {
        let mut header = [0u8; RECORD_HEADER as usize];
        if file_len - pos < RECORD_HEADER {
            break;
        }
        reader.read_exact(&mut header).map_err(io_err(ctx()))?;
        let (len, crc, micros) = split_header(&header);
        let size = RECORD_HEADER + u64::from(len);
        if size > file_len - pos {
            break;
        }
        body.resize(len as usize, 0);
        reader.read_exact(&mut body).map_err(io_err(ctx()))?;
        if record_crc(len, micros, &body) != crc {
            break;
        }
        pos += size;
        scan.records += 1;
        if pos <= head_at {
            scan.head = pos;
            scan.consumed += 1;
        }
    }
    scan.len = pos;
    if pos < file_len {
        scan.cut_bytes = file_len - pos;
        reader
            .into_inner()
            .set_len(pos)
            .map_err(io_err(format!("truncating {}", path.display())))?;
    }
    Ok(Some(scan))
}

fn segment_ids(dir: &Path) -> Result<Vec<u64>, QueueError> {
    let ctx = || format!("listing {}", dir.display());
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(ctx()))? {
        let name = entry.map_err(io_err(ctx()))?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else {
            continue;
        };
        if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(id) = stem.parse() {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

/// The persisted cursor, or `None` if missing or damaged (then delivery restarts at the oldest
/// segment: records may come twice, none is lost).
fn read_cursor(dir: &Path) -> Option<Position> {
    let path = dir.join(CURSOR_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "queue cursor unreadable; starting at the oldest record");
            return None;
        }
    };
    let valid = bytes.len() == CURSOR_LEN
        && &bytes[..8] == CURSOR_MAGIC
        && crc32fast::hash(&bytes[..24]).to_le_bytes() == bytes[24..28];
    if !valid {
        tracing::warn!(path = %path.display(), "queue cursor damaged; starting at the oldest record");
        return None;
    }
    Some(Position {
        segment: u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
        offset: u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")),
    })
}

fn write_cursor(dir: &Path, position: Position) -> Result<(), QueueError> {
    let mut bytes = Vec::with_capacity(CURSOR_LEN);
    bytes.extend_from_slice(CURSOR_MAGIC);
    bytes.extend_from_slice(&position.segment.to_le_bytes());
    bytes.extend_from_slice(&position.offset.to_le_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join(CURSOR_TMP);
    fs::write(&tmp, &bytes).map_err(io_err(format!("writing {}", tmp.display())))?;
    let path = dir.join(CURSOR_FILE);
    fs::rename(&tmp, &path).map_err(io_err(format!("renaming to {}", path.display())))
}

fn remove(path: &Path) -> Result<(), QueueError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("removing {}", path.display()))(e)),
    }
}
