//! Reading landed data files back as JSON rows, in every format the consumer writes: for the operator's
//! checks, tests and people debugging the raw zone.

use std::io::Read;

use super::FileFormat;
use super::columns::format_timestamp;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum ReadbackError {
    #[error("decompressing: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line} is not a JSON object: {source}")]
    Json { line: usize, source: serde_json::Error },
    #[error("reading Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("reading Arrow batches: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("column {0} has a type this reader does not know")]
    UnknownColumn(String),
}

/// Every row of a data file as a JSON object (Parquet rows look like JSON lines rows).
pub fn read_rows(format: FileFormat, data: Bytes) -> Result<Vec<Map<String, Value>>, ReadbackError> {
    match format {
        FileFormat::Parquet => read_parquet(data),
        FileFormat::Jsonl => parse_lines(&data),
        FileFormat::JsonlGzip => parse_lines(&decompress(flate2::read::GzDecoder::new(&data[..]))?),
        FileFormat::JsonlZstd => parse_lines(&decompress(zstd::Decoder::new(&data[..])?)?),
    }
}

/// The (partition, offset) of every row.
pub fn row_positions(rows: &[Map<String, Value>]) -> Vec<(i64, i64)> {
    rows.iter()
        .map(|r| {
            let field = |name: &str| r.get(name).and_then(Value::as_i64).unwrap_or(-1);
            (field("_partition"), field("_offset"))
        })
        .collect()
}

fn decompress(mut reader: impl Read) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.read_to_end(&mut out)?;
    Ok(out)
}

fn parse_lines(data: &[u8]) -> Result<Vec<Map<String, Value>>, ReadbackError> {
    data.split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_slice(line).map_err(|source| ReadbackError::Json { line: i + 1, source })
        })
        .collect()
}

fn read_parquet(data: Bytes) -> Result<Vec<Map<String, Value>>, ReadbackError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)?.build()?;
    let mut rows = Vec::new();
    for batch in reader {
        rows.extend(batch_rows(&batch?)?);
    }
    Ok(rows)
}

fn batch_rows(batch: &RecordBatch) -> Result<Vec<Map<String, Value>>, ReadbackError> {
    let mut rows = vec![Map::new(); batch.num_rows()];
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        for (i, row) in rows.iter_mut().enumerate() {
            let value = if column.is_null(i) {
                Value::Null
            } else {
                match field.data_type() {
                    DataType::Int32 => Value::from(column.as_primitive::<Int32Type>().value(i)),
                    DataType::Int64 => Value::from(column.as_primitive::<Int64Type>().value(i)),
                    DataType::Float64 => {
                        Value::from(column.as_primitive::<arrow_array::types::Float64Type>().value(i))
                    }
                    DataType::Boolean => Value::from(column.as_boolean().value(i)),
                    DataType::Utf8 => Value::from(column.as_string::<i32>().value(i)),
                    DataType::Timestamp(_, _) => Value::from(format_timestamp(
                        column.as_primitive::<TimestampMillisecondType>().value(i),
                    )),
                    _ => return Err(ReadbackError::UnknownColumn(field.name().clone())),
                }
            };
            row.insert(field.name().clone(), value);
        }
    }
    Ok(rows)
}
