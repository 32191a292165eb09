//! A webhook receiver for `bench/run.sh --feeds`: takes every POST on loopback with 204 and
//! counts the messages and their bytes, doing as little as it can, since it shares the machine
//! with the scimd it measures (in a deployment the receiver runs elsewhere). Prints its port on
//! the first line; every 200 ms it writes "messages bytes" to the file given.
//!
//!     receiver COUNT_FILE
//!
//! HTTP/1.1 with keep-alive; bodies sent with Content-Length or chunked.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Default)]
struct Counts {
    messages: AtomicU64,
    bytes: AtomicU64,
}

fn main() -> std::io::Result<()> {
    let count_file = std::env::args()
        .nth(1)
        .ok_or_else(|| std::io::Error::other("usage: receiver COUNT_FILE"))?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("{}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    let counts = Arc::new(Counts::default());
    let written = counts.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let line = format!(
                "{} {}\n",
                written.messages.load(Ordering::Relaxed),
                written.bytes.load(Ordering::Relaxed)
            );
            let _ = std::fs::write(&count_file, line);
        }
    });
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let counts = counts.clone();
        std::thread::spawn(move || {
            let _ = serve(stream, &counts);
        });
    }
    Ok(())
}

/// Answers the requests of one connection until the client closes it.
fn serve(stream: TcpStream, counts: &Counts) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::with_capacity(256 * 1024, stream);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        // The request line; none: the client closed the connection.
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let (mut length, mut chunked) = (0usize, false);
        loop {
            line.clear();
            if input.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.eq_ignore_ascii_case("chunked");
                }
            }
        }
        let size = if chunked {
            read_chunked(&mut input, &mut line, &mut body)?
        } else {
            body.resize(length, 0);
            input.read_exact(&mut body)?;
            length
        };
        counts.messages.fetch_add(1, Ordering::Relaxed);
        counts.bytes.fetch_add(size as u64, Ordering::Relaxed);
        out.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")?;
    }
}

/// Reads a chunked body (its trailer included) and returns its size.
fn read_chunked(
    input: &mut BufReader<TcpStream>,
    line: &mut String,
    body: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut size = 0;
    loop {
        line.clear();
        input.read_line(line)?;
        let hex = line.trim_end().split(';').next().unwrap_or("");
        let n = usize::from_str_radix(hex, 16).map_err(std::io::Error::other)?;
        if n == 0 {
            // The trailer, up to its empty line.
            loop {
                line.clear();
                if input.read_line(line)? == 0 || line.trim_end().is_empty() {
                    return Ok(size);
                }
            }
        }
        body.resize(n, 0);
        input.read_exact(body)?;
        size += n;
        line.clear();
        input.read_line(line)?;
    }
}
