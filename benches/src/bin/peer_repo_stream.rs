//! `peer-repo-stream FILE [--mem-limit-mb N] [--json]`: the workload of
//! `cargo xtask bench` ("walk all records in key order and sum their
//! sizes") through [repo-stream](https://crates.io/crates/repo-stream), the
//! way its README and examples drive it.
//!
//! Settings, as repo-stream documents them: the file is read through a
//! `tokio::io::BufReader` on a current-thread tokio runtime (tokio's file
//! reads run on its blocking pool); blocks are kept in memory up to
//! `--mem-limit-mb` (default 1024, so every input of the bench stays in
//! memory, like its `read-file` example's 1000), each record block reduced
//! at load time to its length (the README's "sum of record sizes" block
//! processor); past the limit the load spills to repo-stream's own disk store
//! (fjall) in a temporary folder and the walk goes on from there.
//!
//! repo-stream checks every block's SHA-256 against its CID, MST key order
//! and key layers, and nothing about the commit's signature.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use repo_stream::{DiskBuilder, DriverBuilder, LoadError, Output};

/// The README's block processor: a record block becomes its length.
// repo-stream's processor type is `fn(Vec<u8>) -> Vec<u8>`.
#[allow(clippy::needless_pass_by_value)]
fn record_len(block: Vec<u8>) -> Vec<u8> {
    (block.len() as u64).to_le_bytes().to_vec()
}

/// Adds up the lengths `record_len` left in `outputs`.
fn add(outputs: Vec<Output>, records: &mut u64, bytes: &mut u64) -> Result<()> {
    for out in outputs {
        let len: [u8; 8] =
            out.data.as_slice().try_into().context("processed record is not 8 bytes")?;
        *records += 1;
        *bytes += u64::from_le_bytes(len);
    }
    Ok(())
}

async fn walk(path: PathBuf, mem_limit_mb: usize) -> Result<(u64, u64, bool)> {
    let file = tokio::fs::File::open(&path).await.with_context(|| format!("{}", path.display()))?;
    let reader = tokio::io::BufReader::new(file);
    let (mut records, mut bytes) = (0, 0);
    match DriverBuilder::new()
        .with_mem_limit_mb(mem_limit_mb)
        .with_block_processor(record_len)
        .load_car(reader)
        .await
    {
        Ok(mut car) => {
            while let Some(chunk) = car.next_chunk_strict(256)? {
                add(chunk, &mut records, &mut bytes)?;
            }
            Ok((records, bytes, false))
        }
        Err(LoadError::MemoryLimitReached(partial)) => {
            let dir = tempfile::tempdir().context("temporary folder for the disk store")?;
            let store = DiskBuilder::new().open(dir.path().join("repo-stream.db")).await?;
            let (_commit, _prev, mut driver) = partial.finish_loading(store).await?;
            while let Some(chunk) = driver.next_chunk(256).await? {
                add(chunk, &mut records, &mut bytes)?;
            }
            Ok((records, bytes, true))
        }
        Err(e) => Err(e.into()),
    }
}

fn main() -> Result<()> {
    let mut file = None;
    let mut mem_limit_mb = 1024;
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--mem-limit-mb" => {
                mem_limit_mb = args.next().context("--mem-limit-mb needs a value")?.parse()?;
            }
            "--json" => json = true,
            _ if file.is_none() => file = Some(PathBuf::from(arg)),
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let path = file.context("usage: peer-repo-stream FILE [--mem-limit-mb N] [--json]")?;
    let size = std::fs::metadata(&path)?.len();
    let start = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (records, bytes, spilled) = runtime.block_on(walk(path, mem_limit_mb))?;
    let secs = start.elapsed().as_secs_f64();
    let mb_s = size as f64 / secs / 1e6;
    if json {
        println!(
            "{{\"records\":{records},\"record_bytes\":{bytes},\"spilled\":{spilled},\"elapsed_secs\":{secs},\"throughput_mb_s\":{mb_s}}}"
        );
    } else {
        println!(
            "{records} records, {bytes} record bytes, spilled: {spilled}, {secs:.4} s ({mb_s:.0} MB/s)"
        );
    }
    Ok(())
}
