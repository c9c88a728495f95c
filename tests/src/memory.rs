//! What another process's writable memory holds: the bytes a core dump of it would show.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// The lines of `/proc/PID/maps` of the writable mappings in which `needle` occurs. Reading
/// another process's memory takes root (the daemon is not dumpable).
pub fn mappings_holding(pid: u32, needle: &[u8]) -> Vec<String> {
    assert!(!needle.is_empty(), "searching for nothing");
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_else(|e| panic!("reading the mappings of process {pid}: {e}"));
    let mut mem = File::open(format!("/proc/{pid}/mem"))
        .unwrap_or_else(|e| panic!("opening the memory of process {pid}: {e}"));
    let mut found = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        else {
            continue;
        };
        if !perms.starts_with("rw") {
            continue;
        }
        let mut at = start;
        while at < end {
            let len = (end - at).min(chunk.len() as u64) as usize;
            // Mappings the kernel will not let us read (guard pages) hold nothing to find.
            let Ok(n) = mem
                .seek(SeekFrom::Start(at))
                .and_then(|_| mem.read(&mut chunk[..len]))
            else {
                break;
            };
            if n == 0 {
                break;
            }
            if chunk[..n].windows(needle.len()).any(|w| w == needle) {
                found.push(line.to_owned());
                break;
            }
            // The chunks overlap, so that a copy across their boundary is seen too.
            at += n.saturating_sub(needle.len() - 1).max(1) as u64;
        }
    }
    found
}
