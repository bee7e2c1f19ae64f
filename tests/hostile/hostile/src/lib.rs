//! A hostile mapper plugin for the runtime's tests. Each record's `attack`
//! field says how to misbehave; a record without one maps to itself.
//!
//! | attack | what the guest does |
//! |---|---|
//! | `loop` | spins forever (the call's deadline must stop it) |
//! | `alloc` | allocates until it dies (the memory cap must stop it) |
//! | `panic` | panics with a message (the trap must carry it) |
//! | `huge` | returns an 8 MiB field (the output cap must refuse it) |
//! | `open-file` | tries to read /etc/passwd (no filesystem is granted) |
//! | `connect` | tries to open a TCP socket (no network is granted) |
//! | `env` | tries to read an environment variable (none are granted) |
//! | `clock` | reads the wall clock (it must be frozen at the epoch) |
//! | `log` | writes a log line through the host |

use crmsync_sdk::prelude::*;

#[derive(Default)]
struct Hostile;

impl Mapper for Hostile {
    type Config = NoConfig;

    fn map(&self, _ctx: &Context<NoConfig>, record: Record) -> Result<Record, RecordError> {
        match record.text("attack") {
            Some("loop") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some("alloc") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Some("panic") => panic!("hostile plugin panicked on purpose"),
            Some("huge") => Ok(record.clone().with("blob", "x".repeat(8 << 20))),
            Some("open-file") => match std::fs::read_to_string("/etc/passwd") {
                Ok(_) => Ok(record.with("escaped", "read /etc/passwd")),
                Err(e) => Err(RecordError::new("denied", format!("open failed: {e}"))),
            },
            Some("connect") => match std::net::TcpStream::connect("127.0.0.1:22") {
                Ok(_) => Ok(record.with("escaped", "opened a socket")),
                Err(e) => Err(RecordError::new("denied", format!("connect failed: {e}"))),
            },
            Some("env") => match std::env::vars().next() {
                Some((k, _)) => Ok(record.with("escaped", format!("saw env {k}"))),
                None => Err(RecordError::new("denied", "no environment")),
            },
            Some("clock") => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                Ok(record.with("clock", now.to_string()))
            }
            Some("log") => {
                crmsync_sdk::log::warn("hello from the guest");
                Ok(record)
            }
            _ => Ok(record),
        }
    }
}

crmsync_sdk::export_mapper!(Hostile);
