//! Deterministic parallel gzip, as pigz writes it.
//!
//! The input is cut into fixed-size blocks. Each block is deflated on its own
//! (on whichever thread is free), primed with the 32 KiB before it as the
//! dictionary and ended with a sync flush, so the blocks' outputs concatenate
//! into one raw deflate stream; the last block finishes it. The CRC-32 of the
//! whole input is combined from the blocks' own. Every block's bytes depend
//! only on the input, never on the thread count or timing: the same input
//! gives the same gzip whatever the number of threads.

use flate2::{Compress, CompressError, Crc, FlushCompress, Status};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::sync::Mutex;

/// Bytes of input per block: big enough that priming each block with its
/// dictionary costs little, small enough that a few in flight per thread
/// keep memory flat.
pub const BLOCK: usize = 1 << 20;
/// Deflate's window: the dictionary each block is primed with.
const WINDOW: usize = 32 * 1024;
/// The gzip header hoist writes: deflate, no name, no mtime (reproducible), OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// One block to deflate.
struct Job {
    seq: u64,
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
}

/// One deflated block and the CRC of its input.
struct Done {
    seq: u64,
    out: Vec<u8>,
    crc: Crc,
}

/// Compresses `input` to `out` as one gzip member at `level` (0–9) on
/// `threads` threads; returns the number of uncompressed bytes.
pub fn gzip(
    input: &mut (dyn Read + Send),
    out: &mut (dyn Write + Send),
    level: u32,
    threads: usize,
) -> io::Result<u64> {
    if level > 9 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("gzip level {level} is not in 0..=9"),
        ));
    }
    out.write_all(&HEADER)?;
    let mut crc = Crc::new();
    let mut total = 0u64;
    let mut emit = |d: Done, out: &mut (dyn Write + Send)| -> io::Result<()> {
        out.write_all(&d.out)?;
        total += u64::from(d.crc.amount());
        crc.combine(&d.crc);
        Ok(())
    };
    if threads <= 1 {
        let mut c = Compress::new(flate2::Compression::new(level), false);
        let mut blocks = Blocks::new(input);
        while let Some(job) = blocks.next_job()? {
            emit(deflate(&mut c, job)?, out)?;
        }
    } else {
        parallel(input, out, level, threads, &mut emit)?;
    }
    out.write_all(&crc.sum().to_le_bytes())?;
    // ISIZE is the length modulo 2^32 (RFC 1952).
    out.write_all(&(total as u32).to_le_bytes())?;
    Ok(total)
}

/// Cuts the input into jobs, each carrying the window before it.
struct Blocks<'a> {
    input: &'a mut (dyn Read + Send),
    seq: u64,
    dict: Vec<u8>,
    done: bool,
}

impl<'a> Blocks<'a> {
    fn new(input: &'a mut (dyn Read + Send)) -> Self {
        Blocks {
            input,
            seq: 0,
            dict: Vec::new(),
            done: false,
        }
    }

    /// The next block; a short (or empty) block is the last one.
    fn next_job(&mut self) -> io::Result<Option<Job>> {
        if self.done {
            return Ok(None);
        }
        let mut data = Vec::with_capacity(BLOCK);
        (&mut *self.input)
            .take(BLOCK as u64)
            .read_to_end(&mut data)?;
        let last = data.len() < BLOCK;
        self.done = last;
        let dict = std::mem::replace(
            &mut self.dict,
            data[data.len().saturating_sub(WINDOW)..].to_vec(),
        );
        let job = Job {
            seq: self.seq,
            dict,
            data,
            last,
        };
        self.seq += 1;
        Ok(Some(job))
    }
}

/// Runs the jobs on `threads` workers and emits their results in order,
/// with at most two blocks per thread in flight.
fn parallel(
    input: &mut (dyn Read + Send),
    out: &mut (dyn Write + Send),
    level: u32,
    threads: usize,
    emit: &mut dyn FnMut(Done, &mut (dyn Write + Send)) -> io::Result<()>,
) -> io::Result<()> {
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let (done_tx, done_rx) = mpsc::channel::<io::Result<Done>>();
    let job_rx = Mutex::new(job_rx);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let job_rx = &job_rx;
            s.spawn(move || {
                let mut c = Compress::new(flate2::Compression::new(level), false);
                loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    if done_tx.send(deflate(&mut c, job)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        // Returning drops `job_tx`, which stops the workers.
        let job_tx = job_tx;
        let mut blocks = Blocks::new(input);
        let mut in_flight = 0usize;
        let mut next = 0u64;
        let mut pending = BTreeMap::new();
        let mut exhausted = false;
        loop {
            while !exhausted && in_flight < 2 * threads {
                match blocks.next_job()? {
                    Some(job) => {
                        job_tx
                            .send(job)
                            .map_err(|_| io::Error::other("a gzip worker stopped"))?;
                        in_flight += 1;
                    }
                    None => exhausted = true,
                }
            }
            if in_flight == 0 {
                return Ok(());
            }
            let done = done_rx
                .recv()
                .map_err(|_| io::Error::other("a gzip worker stopped"))??;
            in_flight -= 1;
            pending.insert(done.seq, done);
            while let Some(d) = pending.remove(&next) {
                emit(d, out)?;
                next += 1;
            }
        }
    })
}

/// Deflates one block: primed with its dictionary, sync-flushed unless last.
fn deflate(c: &mut Compress, job: Job) -> io::Result<Done> {
    let err = |e: CompressError| io::Error::other(format!("deflate: {e}"));
    c.reset();
    if !job.dict.is_empty() {
        c.set_dictionary(&job.dict).map_err(err)?;
    }
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(job.data.len() / 2 + 1024);
    let start = c.total_in();
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(4096));
        }
        let used = (c.total_in() - start) as usize;
        let status = c
            .compress_vec(&job.data[used..], &mut out, flush)
            .map_err(err)?;
        let all_in = (c.total_in() - start) as usize == job.data.len();
        // Deflate has flushed everything when it stopped short of filling the output.
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => break,
            Status::Ok | Status::BufError if !job.last && all_in && room_left => break,
            _ => {}
        }
    }
    let mut crc = Crc::new();
    crc.update(&job.data);
    Ok(Done {
        seq: job.seq,
        out,
        crc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compressible but not trivial: repeated words with a counter.
    fn sample(len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        let mut i = 0u64;
        while v.len() < len {
            v.extend_from_slice(format!("line {i} of the layer {}\n", i * 7919 % 1000).as_bytes());
            i += 1;
        }
        v.truncate(len);
        v
    }

    fn gz(data: &[u8], threads: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let n = gzip(&mut &data[..], &mut out, 6, threads).expect("gzip");
        assert_eq!(n, data.len() as u64);
        out
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut v)
            .expect("gunzip");
        v
    }

    #[test]
    fn same_bytes_whatever_the_thread_count() {
        let data = sample(5 * BLOCK + 12345);
        let one = gz(&data, 1);
        assert_eq!(one, gz(&data, 2));
        assert_eq!(one, gz(&data, 4));
    }

    #[test]
    fn output_decompresses_to_the_input() {
        for len in [0, 1, WINDOW, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK] {
            let data = sample(len);
            for threads in [1, 3] {
                assert_eq!(
                    gunzip(&gz(&data, threads)),
                    data,
                    "len {len} threads {threads}"
                );
            }
        }
    }

    #[test]
    fn incompressible_input_round_trips_the_same_for_any_thread_count() {
        // xorshift: bytes deflate cannot shrink, so blocks come out stored.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..2 * BLOCK + 777)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let one = gz(&data, 1);
        assert_eq!(one, gz(&data, 3));
        assert_eq!(gunzip(&one), data);
    }

    #[test]
    fn dictionary_keeps_the_ratio_close_to_one_stream() {
        let data = sample(4 * BLOCK);
        let ours = gz(&data, 2).len();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&data).expect("write");
        let plain = e.finish().expect("finish").len();
        assert!(
            ours < plain + plain / 50,
            "ours {ours} vs one stream {plain}"
        );
    }

    #[test]
    fn refuses_a_bad_level() {
        let mut out = Vec::new();
        assert!(gzip(&mut &b"x"[..], &mut out, 10, 1).is_err());
    }
}
