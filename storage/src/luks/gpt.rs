//! The GUID partition table of a home image: one partition of the user-home type, named after
//! the user, aligned to 1 MiB (homed-spec §3.2). Image files use 512-byte sectors.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::{ALIGNMENT, LuksError};

/// `SD_GPT_USER_HOME`: 773f91ef-66d4-49b5-bd83-d683bf40ad16.
pub const HOME_PARTITION_TYPE: [u8; 16] = [
    0x77, 0x3f, 0x91, 0xef, 0x66, 0xd4, 0x49, 0xb5, 0xbd, 0x83, 0xd6, 0x83, 0xbf, 0x40, 0xad, 0x16,
];

const SECTOR: u64 = 512;
const SIGNATURE: &[u8; 8] = b"EFI PART";
const REVISION: u32 = 0x0001_0000;
const HEADER_SIZE: u32 = 92;
const ENTRY_COUNT: u32 = 128;
const ENTRY_SIZE: u32 = 128;
/// Sectors taken by the 128 entries of 128 bytes.
const ENTRY_SECTORS: u64 = (ENTRY_COUNT as u64 * ENTRY_SIZE as u64) / SECTOR;
/// The smallest image that can hold the table, one aligned partition and the footer.
const MIN_IMAGE: u64 = 3 * ALIGNMENT;

/// Where the home lives inside an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomePartition {
    /// Byte offset of the partition in the image.
    pub offset: u64,
    /// Size of the partition in bytes.
    pub size: u64,
    /// The partition's unique GUID, as text (`partitionUuid`).
    pub uuid: String,
    /// The partition name (the user name).
    pub name: String,
}

/// Converts a GUID from its on-disk mixed-endian form to the textual form.
fn guid_to_string(b: &[u8]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

/// Converts a big-endian (textual order) UUID to GPT's mixed-endian form.
fn guid_to_disk(uuid: &[u8; 16]) -> [u8; 16] {
    let mut d = *uuid;
    d[0..4].reverse();
    d[4..6].reverse();
    d[6..8].reverse();
    d
}

/// Parses `xxxxxxxx-xxxx-…` (or 32 bare hex digits) into big-endian bytes.
pub(super) fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn random_uuid() -> Result<[u8; 16], LuksError> {
    let mut u = [0u8; 16];
    getrandom::fill(&mut u).map_err(LuksError::random)?;
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    Ok(u)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn encode_name(name: &str) -> Option<[u8; 72]> {
    let mut out = [0u8; 72];
    let units: Vec<u16> = name.encode_utf16().collect();
    if units.len() > 36 {
        return None;
    }
    for (i, u) in units.iter().enumerate() {
        out[2 * i..2 * i + 2].copy_from_slice(&u.to_le_bytes());
    }
    Some(out)
}

fn decode_name(raw: &[u8]) -> String {
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

fn header(
    current: u64,
    backup: u64,
    first_usable: u64,
    last_usable: u64,
    disk_guid: &[u8; 16],
    entries_lba: u64,
    entries_crc: u32,
) -> [u8; SECTOR as usize] {
    let mut h = [0u8; SECTOR as usize];
    h[0..8].copy_from_slice(SIGNATURE);
    h[8..12].copy_from_slice(&REVISION.to_le_bytes());
    h[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
    h[24..32].copy_from_slice(&current.to_le_bytes());
    h[32..40].copy_from_slice(&backup.to_le_bytes());
    h[40..48].copy_from_slice(&first_usable.to_le_bytes());
    h[48..56].copy_from_slice(&last_usable.to_le_bytes());
    h[56..72].copy_from_slice(disk_guid);
    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    h[80..84].copy_from_slice(&ENTRY_COUNT.to_le_bytes());
    h[84..88].copy_from_slice(&ENTRY_SIZE.to_le_bytes());
    h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
    let crc = crc32fast::hash(&h[..HEADER_SIZE as usize]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Writes a fresh GPT to `file` (whose size is already final): one partition of the home type
/// named `name`, starting at 1 MiB and ending on the last 1 MiB boundary before the backup
/// table, as homed does. `partition_uuid` is the record's `partitionUuid`, or random.
pub fn write_home_partition_table(
    file: &File,
    name: &str,
    partition_uuid: Option<&str>,
) -> Result<HomePartition, LuksError> {
    let size = file
        .metadata()
        .map_err(|e| LuksError::io("reading the image size", e))?
        .len();
    if size < MIN_IMAGE {
        return Err(LuksError::Refused(format!(
            "an image of {size} bytes is too small for a home (at least {MIN_IMAGE})"
        )));
    }
    let sectors = size / SECTOR;
    let name_utf16 = encode_name(name)
        .ok_or_else(|| LuksError::Refused(format!("the name {name:?} is too long for GPT")))?;
    let part_uuid = match partition_uuid {
        Some(text) => parse_uuid(text).ok_or_else(|| {
            LuksError::RecordMismatch(format!("partitionUuid {text:?} is not a UUID"))
        })?,
        None => random_uuid()?,
    };
    let disk_guid = random_uuid()?;

    let first_usable = ALIGNMENT / SECTOR;
    let last_usable = sectors - 1 - ENTRY_SECTORS - 1;
    let start = ALIGNMENT;
    // The partition ends on the last 1 MiB boundary before the backup table, as libfdisk's
    // "follow default" placement in homed 252 does.
    let part_size = ((last_usable + 1) * SECTOR / ALIGNMENT * ALIGNMENT) - start;
    let first_lba = start / SECTOR;
    let last_lba = (start + part_size) / SECTOR - 1;

    let mut entries = vec![0u8; (ENTRY_COUNT * ENTRY_SIZE) as usize];
    entries[0..16].copy_from_slice(&guid_to_disk(&HOME_PARTITION_TYPE));
    entries[16..32].copy_from_slice(&guid_to_disk(&part_uuid));
    entries[32..40].copy_from_slice(&first_lba.to_le_bytes());
    entries[40..48].copy_from_slice(&last_lba.to_le_bytes());
    entries[56..128].copy_from_slice(&name_utf16);
    let entries_crc = crc32fast::hash(&entries);

    let disk_guid_disk = guid_to_disk(&disk_guid);
    let primary = header(
        1,
        sectors - 1,
        first_usable,
        last_usable,
        &disk_guid_disk,
        2,
        entries_crc,
    );
    let backup_entries_lba = sectors - 1 - ENTRY_SECTORS;
    let backup = header(
        sectors - 1,
        1,
        first_usable,
        last_usable,
        &disk_guid_disk,
        backup_entries_lba,
        entries_crc,
    );

    let mut mbr = [0u8; SECTOR as usize];
    let p = 446;
    mbr[p + 1..p + 4].copy_from_slice(&[0x00, 0x02, 0x00]);
    mbr[p + 4] = 0xee;
    mbr[p + 5..p + 8].copy_from_slice(&[0xff, 0xff, 0xff]);
    mbr[p + 8..p + 12].copy_from_slice(&1u32.to_le_bytes());
    let count = u32::try_from(sectors - 1).unwrap_or(u32::MAX);
    mbr[p + 12..p + 16].copy_from_slice(&count.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;

    let write = |data: &[u8], lba: u64| {
        file.write_all_at(data, lba * SECTOR)
            .map_err(|e| LuksError::io("writing the partition table", e))
    };
    write(&mbr, 0)?;
    write(&primary, 1)?;
    write(&entries, 2)?;
    write(&entries, backup_entries_lba)?;
    write(&backup, sectors - 1)?;
    file.sync_data()
        .map_err(|e| LuksError::io("syncing the partition table", e))?;
    Ok(HomePartition {
        offset: start,
        size: part_size,
        uuid: guid_to_string(&guid_to_disk(&part_uuid)),
        name: name.to_owned(),
    })
}

/// Reads the partition table of an image. `Ok(None)` means there is no GPT at all (homed also
/// accepts a bare LUKS2 image); a GPT that is damaged, that does not fit in the file, or that
/// has no or several home partitions is an error.
pub fn read_home_partition(file: &File, path: &str) -> Result<Option<HomePartition>, LuksError> {
    let bad = |reason: String| LuksError::BadImage {
        path: path.to_owned(),
        reason,
    };
    let size = file
        .metadata()
        .map_err(|e| LuksError::io("reading the image size", e))?
        .len();
    if size < 2 * SECTOR {
        return Err(bad(format!("it is only {size} bytes long")));
    }
    let mut h = [0u8; SECTOR as usize];
    file.read_exact_at(&mut h, SECTOR)
        .map_err(|e| LuksError::io("reading the partition table", e))?;
    if &h[0..8] != SIGNATURE {
        return Ok(None);
    }
    let header_size = u32_at(&h, 12) as usize;
    if !(HEADER_SIZE as usize..=SECTOR as usize).contains(&header_size) {
        return Err(bad("the GPT header has an impossible size".into()));
    }
    let stored_crc = u32_at(&h, 16);
    let mut check = h;
    check[16..20].fill(0);
    if crc32fast::hash(&check[..header_size]) != stored_crc {
        return Err(bad(
            "the GPT header checksum is wrong (damaged table)".into()
        ));
    }
    let entries_lba = u64_at(&h, 72);
    let count = u32_at(&h, 80);
    let entry_size = u32_at(&h, 84);
    if entry_size < 128 || !entry_size.is_multiple_of(8) || count == 0 || count > 1024 {
        return Err(bad(
            "the GPT header describes an impossible entry array".into()
        ));
    }
    let backup_lba = u64_at(&h, 32);
    if backup_lba.saturating_add(1).saturating_mul(SECTOR) > size {
        return Err(bad(format!(
            "it is {size} bytes long but its partition table ends at byte {} (truncated?)",
            backup_lba.saturating_add(1).saturating_mul(SECTOR)
        )));
    }
    let mut entries = vec![0u8; count as usize * entry_size as usize];
    file.read_exact_at(&mut entries, entries_lba.saturating_mul(SECTOR))
        .map_err(|_| bad("the GPT entry array lies beyond the end of the file".into()))?;
    if crc32fast::hash(&entries) != u32_at(&h, 88) {
        return Err(bad(
            "the GPT entry array checksum is wrong (damaged table)".into()
        ));
    }
    let home_type = guid_to_disk(&HOME_PARTITION_TYPE);
    let mut homes = Vec::new();
    for entry in entries.chunks_exact(entry_size as usize) {
        if entry[0..16] != home_type {
            continue;
        }
        let first = u64_at(entry, 32);
        let last = u64_at(entry, 40);
        if last < first {
            return Err(bad("the home partition ends before it starts".into()));
        }
        homes.push(HomePartition {
            offset: first * SECTOR,
            size: (last - first + 1) * SECTOR,
            uuid: guid_to_string(&entry[16..32]),
            name: decode_name(&entry[56..128]),
        });
    }
    match homes.len() {
        0 => Err(bad("its partition table has no home partition".into())),
        1 => {
            let home = homes.remove(0);
            if home.offset + home.size > size {
                return Err(bad(format!(
                    "it is {size} bytes long but its home partition ends at byte {} (truncated?)",
                    home.offset + home.size
                )));
            }
            Ok(Some(home))
        }
        n => Err(bad(format!(
            "its partition table has {n} home partitions; homed images have exactly one"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(size: u64) -> (tempfile::NamedTempFile, File) {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let file = tmp.reopen().unwrap();
        file.set_len(size).unwrap();
        (tmp, file)
    }

    #[test]
    fn table_round_trips_and_is_aligned() {
        let (_tmp, file) = image(64 * 1024 * 1024);
        let uuid = "8ba9f354-48bc-4f3f-a56a-8581b8150307";
        let written = write_home_partition_table(&file, "dave", Some(uuid)).unwrap();
        // homed 252 (libfdisk, 1 MiB grain) places it at sectors 2048..=129023 in 64 MiB.
        assert_eq!(written.offset, 2048 * 512);
        assert_eq!(written.size, (129023 - 2048 + 1) * 512);
        assert_eq!(written.uuid, uuid);
        let read = read_home_partition(&file, "img").unwrap().unwrap();
        assert_eq!(read, written);
        assert_eq!(read.name, "dave");
    }

    #[test]
    fn no_table_means_bare_image() {
        let (_tmp, file) = image(4 * 1024 * 1024);
        assert_eq!(read_home_partition(&file, "img").unwrap(), None);
    }

    #[test]
    fn damage_is_reported() {
        let (_tmp, file) = image(16 * 1024 * 1024);
        write_home_partition_table(&file, "eve", None).unwrap();
        // Flip a byte of the partition name: the entry checksum no longer matches.
        file.write_all_at(b"X", 2 * 512 + 60).unwrap();
        let err = read_home_partition(&file, "img").unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");

        let (_tmp, file) = image(16 * 1024 * 1024);
        write_home_partition_table(&file, "eve", None).unwrap();
        file.set_len(8 * 1024 * 1024).unwrap();
        let err = read_home_partition(&file, "img").unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn too_small_or_bad_names_are_refused() {
        let (_tmp, file) = image(2 * 1024 * 1024);
        assert!(write_home_partition_table(&file, "eve", None).is_err());
        let (_tmp, file) = image(8 * 1024 * 1024);
        assert!(write_home_partition_table(&file, &"x".repeat(40), None).is_err());
        assert!(write_home_partition_table(&file, "eve", Some("nope")).is_err());
    }
}
