//! JSON lines: one object per record, the sink's columns first, then the record's own fields.
//!
//! The file is built in memory, or streamed to the `file://` store while it is built ([`Spill`]): then a
//! landing holds its records and a couple of MiB of the file instead of the whole file.

use std::io::Write;

use flate2::write::GzEncoder;
use streamlake_core::rawzone::FileChecksum;
use streamlake_core::rawzone::FileFormat;
use streamlake_core::rawzone::columns::format_timestamp;
use streamlake_core::rawzone::store::local::{DIRECT_IO_ALIGN, StreamedFile};

use super::EncodeError;
use crate::classify::ValidEvent;

/// Fast levels: the raw zone is written once and read by batch jobs; throughput matters more.
const GZIP_LEVEL: u32 = 1;
const ZSTD_LEVEL: i32 = 3;
/// A streamed file's bytes are written out once this many are buffered, whole blocks from a block
/// boundary, so that they go to the disk with `O_DIRECT` in place.
pub const SPILL_BYTES: usize = 1 << 20;

enum Output {
    Plain(Vec<u8>),
    Gzip(GzEncoder<Vec<u8>>),
    Zstd(zstd::Encoder<'static, Vec<u8>>),
}

impl Output {
    /// The buffer the file's bytes are appended to (behind the compressor, which only ever appends).
    fn buffer(&mut self) -> &mut Vec<u8> {
        match self {
            Self::Plain(out) => out,
            Self::Gzip(out) => out.get_mut(),
            Self::Zstd(out) => out.get_mut(),
        }
    }
}

/// The finished file, as [`JsonlWriter::finish`] leaves it.
pub enum Finished {
    /// All of the file, from `start` in the buffer.
    Memory { buffer: Vec<u8>, start: usize },
    /// The file's bytes but the last ones written to `file`, not yet named; `buffer[start..]` are the
    /// last ones. `checksum` and `bytes` are of the whole file.
    Streamed {
        file: StreamedFile,
        buffer: Vec<u8>,
        start: usize,
        checksum: FileChecksum,
        bytes: u64,
    },
}

/// Streams the file's bytes to the store as they are buffered.
struct Spill {
    file: StreamedFile,
    checksum: FileChecksum,
}

impl Spill {
    /// Writes the whole blocks buffered from `*start` on and moves the rest back to `*start`.
    fn write_out(&mut self, buffer: &mut Vec<u8>, start: &mut usize) -> Result<(), EncodeError> {
        realign(buffer, start);
        let whole = (buffer.len() - *start) / DIRECT_IO_ALIGN * DIRECT_IO_ALIGN;
        let piece = &buffer[*start..*start + whole];
        self.checksum.update(piece);
        self.file.write(piece)?;
        buffer.copy_within(*start + whole.., *start);
        buffer.truncate(buffer.len() - whole);
        Ok(())
    }
}

/// Moves the bytes from `*start` on to the first block boundary of the buffer's memory (it moves when
/// a line larger than the room left makes the buffer grow), so that pieces keep going out in place.
fn realign(buffer: &mut Vec<u8>, start: &mut usize) {
    // Room to move forward first: growing while moving would move the memory again.
    buffer.reserve(DIRECT_IO_ALIGN);
    let aligned = buffer.as_ptr().align_offset(DIRECT_IO_ALIGN).min(DIRECT_IO_ALIGN);
    if aligned == *start {
        return;
    }
    let len = buffer.len();
    if aligned > *start {
        buffer.resize(len + aligned - *start, 0);
    }
    buffer.copy_within(*start..len, aligned);
    buffer.truncate(len + aligned - *start);
    *start = aligned;
}

pub struct JsonlWriter {
    output: Output,
    /// Where the file starts in the output's buffer (a block boundary, see `encode/pool.rs`).
    start: usize,
    spill: Option<Spill>,
    line: Vec<u8>,
    seconds: SecondText,
}

impl JsonlWriter {
    /// Writes into `buffer` from `start` (empty, sized for the file up front, so it is not copied while
    /// it grows); with `streamed`, only up to [`SPILL_BYTES`] at a time before they go to that file.
    pub fn new(
        format: FileFormat,
        buffer: Vec<u8>,
        start: usize,
        streamed: Option<StreamedFile>,
    ) -> std::io::Result<Self> {
        let output = match format {
            FileFormat::JsonlGzip => {
                Output::Gzip(GzEncoder::new(buffer, flate2::Compression::new(GZIP_LEVEL)))
            }
            FileFormat::JsonlZstd => Output::Zstd(zstd::Encoder::new(buffer, ZSTD_LEVEL)?),
            _ => Output::Plain(buffer),
        };
        Ok(Self {
            output,
            start,
            spill: streamed.map(|file| Spill {
                file,
                checksum: FileChecksum::default(),
            }),
            line: Vec::with_capacity(4096),
            seconds: SecondText::default(),
        })
    }

    /// Writes one line: the sink's columns, then the record's own fields taken verbatim from `payload`
    /// (a JSON object the classifier checked), so the record is never parsed into a tree or re-serialized.
    pub fn push(
        &mut self,
        partition: i32,
        offset: i64,
        event: &ValidEvent,
        payload: &[u8],
    ) -> Result<(), EncodeError> {
        let Self {
            output,
            line,
            seconds,
            ..
        } = self;
        let compressor: &mut dyn Write = match output {
            // Straight into the file's buffer: the line is not copied a second time.
            Output::Plain(out) => {
                append_line(out, seconds, partition, offset, event, payload)?;
                return self.spill_if_full();
            }
            Output::Gzip(out) => out,
            Output::Zstd(out) => out,
        };
        line.clear();
        append_line(line, seconds, partition, offset, event, payload)?;
        compressor.write_all(line)?;
        self.spill_if_full()
    }

    fn spill_if_full(&mut self) -> Result<(), EncodeError> {
        let Some(spill) = &mut self.spill else {
            return Ok(());
        };
        let buffer = self.output.buffer();
        if buffer.len() - self.start >= SPILL_BYTES {
            spill.write_out(buffer, &mut self.start)?;
        }
        Ok(())
    }

    pub fn finish(self) -> Result<Finished, EncodeError> {
        let mut buffer = match self.output {
            Output::Plain(out) => out,
            Output::Gzip(out) => out.finish()?,
            Output::Zstd(out) => out.finish()?,
        };
        let mut start = self.start;
        let Some(mut spill) = self.spill else {
            return Ok(Finished::Memory { buffer, start });
        };
        if buffer.len() - start >= SPILL_BYTES {
            spill.write_out(&mut buffer, &mut start)?;
        }
        realign(&mut buffer, &mut start);
        spill.checksum.update(&buffer[start..]);
        Ok(Finished::Streamed {
            bytes: spill.file.len() + (buffer.len() - start) as u64,
            file: spill.file,
            buffer,
            start,
            checksum: spill.checksum,
        })
    }
}

fn append_line(
    line: &mut Vec<u8>,
    seconds: &mut SecondText,
    partition: i32,
    offset: i64,
    event: &ValidEvent,
    payload: &[u8],
) -> std::io::Result<()> {
    // Integers through itoa: `write!` and its formatting machinery showed in profiles (~1.5% of the CPU).
    let mut digits = itoa::Buffer::new();
    line.extend_from_slice(br#"{"_partition":"#);
    line.extend_from_slice(digits.format(partition).as_bytes());
    line.extend_from_slice(br#","_offset":"#);
    line.extend_from_slice(digits.format(offset).as_bytes());
    line.extend_from_slice(br#","_timestamp":""#);
    seconds.append(line, event.timestamp);
    line.extend_from_slice(br#"","_key":"#);
    serde_json::to_writer(&mut *line, &event.key)?;
    line.extend_from_slice(br#","_event_id":"#);
    serde_json::to_writer(&mut *line, &event.event_id)?;
    line.extend_from_slice(br#","_schema_version":"#);
    line.extend_from_slice(digits.format(event.schema_version).as_bytes());
    match object_members(payload) {
        Some(members) => {
            line.push(b',');
            let start = line.len();
            line.extend_from_slice(members);
            // Raw line breaks can only be whitespace between tokens in valid JSON (strings escape them).
            // Most records have none: memchr finds that a vector at a time, where a byte loop was ~7% of
            // the consumer's CPU.
            for at in memchr::memchr2_iter(b'\n', b'\r', members) {
                line[start + at] = b' ';
            }
        }
        None => line.push(b'}'),
    }
    line.push(b'\n');
    Ok(())
}

/// `_timestamp` text, formatted once per second: the records of a file mostly share their seconds, and
/// the calendar arithmetic showed in profiles. Appends what [`format_timestamp`] returns.
#[derive(Default)]
struct SecondText {
    second: Option<i64>,
    /// `2025-01-02T10:00:00` of `second`.
    text: String,
}

impl SecondText {
    fn append(&mut self, line: &mut Vec<u8>, millis: i64) {
        let (second, milli) = (millis.div_euclid(1000), millis.rem_euclid(1000));
        if self.second != Some(second) {
            let formatted = format_timestamp(second * 1000);
            // `…:SS.000Z`: keep everything before the fraction.
            self.text = formatted
                .get(..formatted.len() - 5)
                .unwrap_or_default()
                .to_owned();
            self.second = Some(second);
        }
        line.extend_from_slice(self.text.as_bytes());
        line.extend_from_slice(&[
            b'.',
            b'0' + (milli / 100) as u8,
            b'0' + (milli / 10 % 10) as u8,
            b'0' + (milli % 10) as u8,
            b'Z',
        ]);
    }
}

/// The members of a JSON object's text and its closing brace: `{"a":1}` gives `"a":1}`; `{ }` gives `None`.
fn object_members(payload: &[u8]) -> Option<&[u8]> {
    let start = payload.iter().position(|b| !b.is_ascii_whitespace())?;
    let end = payload.iter().rposition(|b| !b.is_ascii_whitespace())?;
    let inner = payload.get(start + 1..=end)?;
    let first = inner.iter().position(|b| !b.is_ascii_whitespace())?;
    (inner[first] != b'}').then_some(&inner[first..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_the_formatter_whether_or_not_the_second_is_cached() {
        let mut seconds = SecondText::default();
        for millis in [
            1_735_862_400_000,
            1_735_862_400_007,
            1_735_862_400_999,
            1_735_862_401_050,
            1_735_862_400_120,
            -1,
            0,
            253_402_300_799_999,
        ] {
            let mut line = Vec::new();
            seconds.append(&mut line, millis);
            assert_eq!(
                String::from_utf8(line).expect("UTF-8"),
                format_timestamp(millis),
                "{millis}"
            );
        }
    }

    #[test]
    fn realigning_moves_the_bytes_to_a_block_boundary_and_keeps_them() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        // Every start the bytes can have after the buffer moved: before, at and after the boundary.
        for shift in [0, 1, 15, 4095, 4096, 5000] {
            let mut buffer: Vec<u8> = Vec::with_capacity(3 * DIRECT_IO_ALIGN + data.len());
            let boundary = buffer.as_ptr().align_offset(DIRECT_IO_ALIGN);
            let mut start = (boundary + shift) % (2 * DIRECT_IO_ALIGN);
            buffer.resize(start, 0);
            buffer.extend_from_slice(&data);
            realign(&mut buffer, &mut start);
            assert_eq!(
                buffer.as_ptr().wrapping_add(start).align_offset(DIRECT_IO_ALIGN),
                0,
                "shift {shift}"
            );
            assert!(start < DIRECT_IO_ALIGN, "shift {shift}: the first boundary");
            assert!(
                buffer[start..] == data[..],
                "shift {shift}: the bytes moved unchanged"
            );
        }
    }

    #[test]
    fn object_members_strip_the_opening_brace_and_keep_the_rest() {
        assert_eq!(object_members(br#"{"a":1}"#), Some(&br#""a":1}"#[..]));
        assert_eq!(
            object_members(b"  {\n \"a\" : [1, 2]\n}\n"),
            Some(&b"\"a\" : [1, 2]\n}"[..])
        );
        assert_eq!(object_members(b"{}"), None);
        assert_eq!(object_members(b" { \n } "), None);
    }
}
