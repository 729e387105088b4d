//! `roombench`: the rooms figures of BENCHMARKS.md, measured from outside a running server.
//!
//! - `roombench empty --url http://127.0.0.1:PORT --rooms 1000 --server-pid PID`: creates that
//!   many empty rooms through `POST /api/rooms`, waits 2 s, then measures the server's CPU (from
//!   /proc/PID/stat) over 10 s and its RSS before and after.
//! - `roombench create-join --url http://127.0.0.1:PORT --count 200`: opens a WebSocket, sends a
//!   hello that creates a room, and times until the welcome arrives; one at a time; prints
//!   p50/p99/max. The server needs `--room-creates-per-minute` and `--max-rooms` above `--count`.
//!
//! Both print one JSON line.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use shared::protocol::{self, ClientMsg, PROTOCOL_VERSION, ServerMsg};
use shared::room::{RoomRequest, RoomSettings};
use tokio_tungstenite::tungstenite::Message;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://").trim_end_matches('/').to_string()
}

fn post_room(addr: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let body = "{}";
    let request = format!(
        "POST /api/rooms HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// (utime + stime) in clock ticks, and RSS in KiB, of a process.
fn proc_usage(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (ticks, rss)
}

fn empty(args: &[String]) {
    let addr = host_port(&arg(args, "--url").expect("--url"));
    let rooms: usize = arg(args, "--rooms").map_or(1000, |v| v.parse().expect("--rooms N"));
    let pid: u32 = arg(args, "--server-pid").expect("--server-pid").parse().expect("pid");
    let (_, rss_before) = proc_usage(pid);
    let mut created = 0;
    for _ in 0..rooms {
        if post_room(&addr) == 201 {
            created += 1;
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let (cpu_start, rss_rooms) = proc_usage(pid);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let (cpu_end, rss_end) = proc_usage(pid);
    let seconds = started.elapsed().as_secs_f64();
    let clock_ticks = 100.0; // USER_HZ on Linux.
    let cores = (cpu_end - cpu_start) as f64 / clock_ticks / seconds;
    println!(
        "{}",
        serde_json::json!({
            "rooms_requested": rooms,
            "rooms_created": created,
            "server_cpu_percent_of_a_core": cores * 100.0,
            "server_rss_mb_before": rss_before as f64 / 1024.0,
            "server_rss_mb_with_rooms": rss_rooms as f64 / 1024.0,
            "server_rss_mb_after_10s": rss_end as f64 / 1024.0,
            "rss_mb_per_1000_rooms": (rss_end.saturating_sub(rss_before)) as f64 / 1024.0 * 1000.0 / created.max(1) as f64,
        })
    );
}

async fn create_join(args: &[String]) {
    let addr = host_port(&arg(args, "--url").expect("--url"));
    let count: usize = arg(args, "--count").map_or(200, |v| v.parse().expect("--count N"));
    let mut times_ms = Vec::with_capacity(count);
    let mut failures = 0;
    for index in 0..count {
        let started = Instant::now();
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.expect("websocket connects");
        let hello = ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: format!("b{index}"),
            resume: None,
            room: RoomRequest::Create(RoomSettings { name: Some(format!("bench {index}")), ..RoomSettings::default() }),
            host_key: None,
            client_id: index as u64 + 1,
            auth: None,
            guest: None,
        };
        ws.send(Message::Binary(protocol::encode(&hello).into())).await.expect("hello");
        let mut welcomed = false;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            if let Message::Binary(bytes) = frame {
                match protocol::decode_server(&bytes) {
                    Ok(ServerMsg::Welcome(_)) => {
                        welcomed = true;
                        break;
                    }
                    Ok(ServerMsg::Disconnect(reason)) => {
                        eprintln!("refused: {reason}");
                        break;
                    }
                    _ => {}
                }
            }
        }
        if welcomed {
            times_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        } else {
            failures += 1;
        }
        let _ = ws.close(None).await;
    }
    times_ms.sort_by(f64::total_cmp);
    let pick =
        |q: f64| times_ms.get(((times_ms.len().max(1) - 1) as f64 * q).round() as usize).copied().unwrap_or(f64::NAN);
    println!(
        "{}",
        serde_json::json!({
            "create_join": times_ms.len(),
            "failures": failures,
            "ms_p50": pick(0.5),
            "ms_p99": pick(0.99),
            "ms_max": times_ms.last().copied().unwrap_or(f64::NAN),
        })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("empty") => empty(&args),
        Some("create-join") => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(create_join(&args));
        }
        _ => {
            eprintln!("usage: roombench empty --url URL --rooms N --server-pid PID | create-join --url URL --count N");
            std::process::exit(2);
        }
    }
}
