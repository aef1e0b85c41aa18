//! JSON lines: one object per record, the sink's columns first, then the record's own fields.

use std::io::Write;

use flate2::write::GzEncoder;
use streamlake_core::rawzone::FileFormat;

use super::format_timestamp;
use crate::classify::ValidEvent;

/// Fast levels: the raw zone is written once and read by batch jobs; throughput matters more.
const GZIP_LEVEL: u32 = 1;
const ZSTD_LEVEL: i32 = 3;

enum Output {
    Plain(Vec<u8>),
    Gzip(GzEncoder<Vec<u8>>),
    Zstd(zstd::Encoder<'static, Vec<u8>>),
}

pub struct JsonlWriter {
    output: Output,
    line: Vec<u8>,
}

impl JsonlWriter {
    pub fn new(format: FileFormat) -> std::io::Result<Self> {
        let output = match format {
            FileFormat::JsonlGzip => {
                Output::Gzip(GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL)))
            }
            FileFormat::JsonlZstd => Output::Zstd(zstd::Encoder::new(Vec::new(), ZSTD_LEVEL)?),
            _ => Output::Plain(Vec::new()),
        };
        Ok(Self {
            output,
            line: Vec::with_capacity(4096),
        })
    }

    pub fn push(&mut self, partition: i32, offset: i64, event: &ValidEvent) -> std::io::Result<()> {
        let line = &mut self.line;
        line.clear();
        write!(
            line,
            r#"{{"_partition":{partition},"_offset":{offset},"_timestamp":""#
        )?;
        line.extend_from_slice(format_timestamp(event.timestamp).as_bytes());
        line.extend_from_slice(br#"","_key":"#);
        serde_json::to_writer(&mut *line, &event.key)?;
        line.extend_from_slice(br#","_event_id":"#);
        serde_json::to_writer(&mut *line, &event.event_id)?;
        write!(line, r#","_schema_version":{}"#, event.schema_version)?;
        if event.fields.is_empty() {
            line.push(b'}');
        } else {
            // The record's object, with its opening brace turned into the separator after our columns.
            let start = line.len();
            serde_json::to_writer(&mut *line, &event.fields)?;
            line[start] = b',';
        }
        line.push(b'\n');
        match &mut self.output {
            Output::Plain(out) => out.extend_from_slice(line),
            Output::Gzip(out) => out.write_all(line)?,
            Output::Zstd(out) => out.write_all(line)?,
        }
        Ok(())
    }

    pub fn finish(self) -> std::io::Result<Vec<u8>> {
        match self.output {
            Output::Plain(out) => Ok(out),
            Output::Gzip(out) => out.finish(),
            Output::Zstd(out) => out.finish(),
        }
    }
}
