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
//! | `print` | prints to stdout and stderr, then maps normally |
//!
//! The attack can also come from a Salesforce record's `LastName`
//! (`attack:panic`), so the plugin can run as a connection's mapper: records
//! going to a named marketing object without an attack map to a contact (`email`,
//! `firstName`, `lastName`), as the standard mapping would.

use crmsync_sdk::prelude::*;

#[derive(Default)]
struct Hostile;

impl Mapper for Hostile {
    type Config = NoConfig;

    fn map(&self, ctx: &Context<NoConfig>, record: Record) -> Result<Record, RecordError> {
        let from_name = record.text("LastName").and_then(|l| l.strip_prefix("attack:")).map(str::to_string);
        let attack = record.text("attack").map(str::to_string).or(from_name);
        match attack.as_deref() {
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
            Some("print") => {
                println!("hostile plugin printing to stdout");
                eprintln!("hostile plugin printing to stderr");
                Ok(as_contact(ctx, record))
            }
            _ => Ok(as_contact(ctx, record)),
        }
    }
}

/// A Salesforce record going to a named marketing object (as the engine
/// sends them) becomes a contact; anything else maps to itself.
fn as_contact(ctx: &Context<NoConfig>, record: Record) -> Record {
    let Some(target) = ctx.target.clone() else { return record };
    if ctx.direction != Direction::ToMarketing
        || record.system != System::Salesforce
        || record.get("attack").is_some()
    {
        return record;
    }
    let mut out = Record::new(System::ActiveCampaign, target);
    out.id = record.id.clone();
    for (from, to) in [("Email", "email"), ("FirstName", "firstName"), ("LastName", "lastName")] {
        if let Some(v) = record.get(from) {
            out.set(to, v.clone());
        }
    }
    out
}

crmsync_sdk::export_mapper!(Hostile);
