//! `sha-baseline FILE [--threads 1|2] [--json]`: the physical-limit
//! reference of `cargo xtask bench`.
//!
//! Reads a CAR file with a plain buffered loop, splits it into sections
//! with the least framing work there is (`atrepo_car::Decoder` with
//! [`HashCheck::Unchecked`]: lengths and CIDs, no hashing), and SHA-256-hashes
//! every block's bytes once, comparing each digest with the block's CID.
//! Nothing else: no tree, no records, no signature. Any verifier must at
//! least do this much, so its time is the floor a full verification is
//! compared with.
//!
//! With `--threads 2` the reading thread hashes every other chunk of about
//! 1 MiB itself and hands the rest to a second thread: the bound for a
//! verifier that uses both cores to hash.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use atrepo_car::{Decoder, HashCheck, Options, Status};
use sha2::{Digest, Sha256};

/// Bytes read per chunk (the last section of a chunk may run past it).
const CHUNK: usize = 1 << 20;

/// Splits a file into chunks of whole CAR sections.
struct Chunker {
    file: File,
    decoder: Decoder,
    /// Bytes read past the last whole section of the previous chunk.
    carry: Vec<u8>,
    eof: bool,
    done: bool,
    /// The CAR's length in bytes, once it has been read.
    bytes: u64,
    /// Bytes to read per chunk: [`CHUNK`], or less for a smaller file.
    chunk: usize,
}

impl Chunker {
    fn new(file: File) -> Result<Self> {
        let len = file.metadata().context("file size")?.len();
        // One byte more than the file, so that the first read also sees
        // its end.
        let chunk = usize::try_from(len).map_or(CHUNK, |l| CHUNK.min(l + 1));
        let options = Options::default().hash_check(HashCheck::Unchecked);
        Ok(Chunker {
            file,
            decoder: Decoder::new(options),
            carry: Vec::new(),
            eof: false,
            done: false,
            bytes: 0,
            chunk,
        })
    }

    /// Fills `buf` with the next whole sections and `ranges` with where
    /// each block's bytes are in it (with the block's SHA-256 digest as the
    /// CID claims it); `false` once the CAR is done.
    fn next(
        &mut self,
        buf: &mut Vec<u8>,
        ranges: &mut Vec<(Range<usize>, [u8; 32])>,
    ) -> Result<bool> {
        ranges.clear();
        buf.clear();
        if self.done {
            return Ok(false);
        }
        buf.extend_from_slice(&self.carry);
        self.carry.clear();
        let mut want = self.chunk;
        loop {
            // Read until `want` bytes or the end of the file.
            while buf.len() < want && !self.eof {
                let at = buf.len();
                buf.resize(want, 0);
                let n = self.file.read(&mut buf[at..]).context("reading the CAR")?;
                buf.truncate(at + n);
                self.eof = n == 0;
            }
            let mut pos = 0;
            loop {
                match self.decoder.decode(&buf[pos..], self.eof)? {
                    Status::Header { consumed, .. } => pos += consumed,
                    Status::Frame { frame, consumed } => {
                        let end = pos + consumed;
                        let digest = frame.cid.hash().digest();
                        let mut claimed = [0; 32];
                        if frame.cid.hash().code() != atrepo_car::SHA2_256 || digest.len() != 32 {
                            bail!("block {} is not sha2-256", frame.index);
                        }
                        claimed.copy_from_slice(digest);
                        ranges.push((end - frame.data.len()..end, claimed));
                        pos = end;
                    }
                    Status::Partial { needed } => {
                        if pos == 0 {
                            // Not even one whole section: read more.
                            want = want.max(needed);
                            break;
                        }
                        self.carry.extend_from_slice(&buf[pos..]);
                        buf.truncate(pos);
                        self.bytes += pos as u64;
                        return Ok(true);
                    }
                    Status::End => {
                        self.done = true;
                        buf.truncate(pos);
                        self.bytes += pos as u64;
                        return Ok(true);
                    }
                }
            }
        }
    }
}

/// Hashes the blocks of one chunk; returns how many did not match their CID.
fn hash(buf: &[u8], ranges: &[(Range<usize>, [u8; 32])]) -> u64 {
    let mut bad = 0;
    for (range, claimed) in ranges {
        let digest = Sha256::digest(&buf[range.clone()]);
        bad += u64::from(digest.as_slice() != claimed);
    }
    bad
}

/// One thread: read, frame and hash.
fn one_thread(chunker: &mut Chunker) -> Result<(u64, u64)> {
    let (mut buf, mut ranges) = (Vec::new(), Vec::new());
    let (mut blocks, mut bad) = (0, 0);
    while chunker.next(&mut buf, &mut ranges)? {
        blocks += ranges.len() as u64;
        bad += hash(&buf, &ranges);
    }
    Ok((blocks, bad))
}

/// A chunk and where its blocks are.
type Chunk = (Vec<u8>, Vec<(Range<usize>, [u8; 32])>);

/// Two threads: this one reads, frames and hashes every other chunk; a
/// second one hashes the rest. Buffers go back and forth, so nothing is
/// allocated per chunk after the first few.
fn two_threads(chunker: &mut Chunker) -> Result<(u64, u64)> {
    let (to_worker, work) = mpsc::sync_channel::<Chunk>(2);
    let (give_back, returned) = mpsc::sync_channel::<Chunk>(4);
    let worker = std::thread::spawn(move || {
        let mut bad = 0;
        for chunk in work {
            bad += hash(&chunk.0, &chunk.1);
            if give_back.send(chunk).is_err() {
                break;
            }
        }
        bad
    });
    let (mut own, mut own_ranges) = (Vec::new(), Vec::new());
    let (mut blocks, mut bad) = (0, 0);
    let mut odd = false;
    loop {
        if odd {
            if !chunker.next(&mut own, &mut own_ranges)? {
                break;
            }
            blocks += own_ranges.len() as u64;
            bad += hash(&own, &own_ranges);
        } else {
            let (mut buf, mut ranges) = returned.try_recv().unwrap_or_default();
            if !chunker.next(&mut buf, &mut ranges)? {
                break;
            }
            blocks += ranges.len() as u64;
            to_worker.send((buf, ranges)).context("the hashing thread stopped")?;
        }
        odd = !odd;
    }
    drop(to_worker);
    let worker_bad = worker.join().map_err(|_| anyhow::anyhow!("the hashing thread panicked"))?;
    Ok((blocks, bad + worker_bad))
}

fn main() -> Result<()> {
    let mut file = None;
    let mut threads = 1;
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--threads" => {
                threads = args.next().context("--threads needs a value")?.parse()?;
            }
            "--json" => json = true,
            "-h" | "--help" => {
                println!("usage: sha-baseline FILE [--threads 1|2] [--json]");
                return Ok(());
            }
            _ if file.is_none() => file = Some(PathBuf::from(arg)),
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let path = file.context("usage: sha-baseline FILE [--threads 1|2] [--json]")?;
    let start = Instant::now();
    let mut chunker =
        Chunker::new(File::open(&path).with_context(|| format!("{}", path.display()))?)?;
    let (blocks, bad) = match threads {
        1 => one_thread(&mut chunker)?,
        2 => two_threads(&mut chunker)?,
        n => bail!("--threads must be 1 or 2, found {n}"),
    };
    let secs = start.elapsed().as_secs_f64();
    let bytes = chunker.bytes;
    if bad > 0 {
        bail!("{bad} of {blocks} blocks do not match their CIDs");
    }
    let mb_s = bytes as f64 / secs / 1e6;
    if json {
        println!(
            "{{\"bytes\":{bytes},\"blocks\":{blocks},\"threads\":{threads},\"elapsed_secs\":{secs},\"throughput_mb_s\":{mb_s}}}"
        );
    } else {
        println!(
            "{bytes} bytes, {blocks} blocks hashed on {threads} thread(s) in {secs:.4} s ({mb_s:.0} MB/s)"
        );
    }
    Ok(())
}
