//! `solace batch encode|decode`: one batch through standard input and output.

use std::io::{BufRead, Read, Write};

use solace_codec::{BatchDecoder, BatchEncoder, DecodeError, EncoderConfig, RawItem, RawItemError};

/// Why a `solace batch` command failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchCliError {
    #[error("line {line}: {error}")]
    BadItem { line: usize, error: RawItemError },
    #[error("line {line} is not UTF-8")]
    NotUtf8 { line: usize },
    #[error("the input is not a valid batch: {0}")]
    BadBatch(#[from] DecodeError),
    #[error("compression level {0} is out of range 0..=9")]
    BadLevel(u32),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one DynamoDB-JSON item per line (blank lines skipped) and writes one batch.
/// Nothing is written unless every line is a valid item.
pub fn encode(
    input: impl BufRead,
    mut output: impl Write,
    level: u32,
) -> Result<usize, BatchCliError> {
    if level > 9 {
        return Err(BatchCliError::BadLevel(level));
    }
    let mut encoder = BatchEncoder::new(EncoderConfig {
        target_bytes: usize::MAX,
        max_items: usize::MAX,
        level,
    });
    for (index, line) in input.split(b'\n').enumerate() {
        let line = line?;
        let number = index + 1;
        if std::str::from_utf8(&line).is_err() {
            return Err(BatchCliError::NotUtf8 { line: number });
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let item = RawItem::parse(&line).map_err(|error| BatchCliError::BadItem {
            line: number,
            error,
        })?;
        encoder.push(item);
    }
    let batch = encoder.finish();
    output.write_all(&batch.body)?;
    output.flush()?;
    Ok(batch.items)
}

/// Output is handed to the writer in blocks of about this many bytes.
const OUTPUT_BLOCK: usize = 1 << 20;

/// Reads one batch and writes its items, one compact JSON object per line. Each item is its
/// checked byte range in the inflated batch, written as it is stored with any white space
/// between tokens removed ([`RawItem::compact_into`]): no typed item in between.
pub fn decode(
    mut input: impl Read,
    mut output: impl Write,
    max_inflated: usize,
) -> Result<usize, BatchCliError> {
    let mut body = Vec::new();
    input.read_to_end(&mut body)?;
    let mut decoder = BatchDecoder::new(max_inflated);
    let batch = decoder.decode(&body)?;
    let mut block = Vec::with_capacity(OUTPUT_BLOCK + (64 << 10));
    for item in batch.iter() {
        item.compact_into(&mut block);
        block.push(b'\n');
        if block.len() >= OUTPUT_BLOCK {
            output.write_all(&block)?;
            block.clear();
        }
    }
    output.write_all(&block)?;
    output.flush()?;
    Ok(batch.len())
}
