extern crate std;

use super::cache::{InsertError, PageCache, RemoveError};
use super::*;
use crate::addr::Pfn;
use crate::block::RamDisk;
use proptest::prelude::*;
use std::collections::HashMap;
use std::vec::Vec;

/// The bytes of a ustar archive of `files`, written by the `tar` crate (the
/// writer the boot tool uses), padded to whole sectors.
fn archive(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).unwrap();
        header.set_size(data.len() as u64);
        header.set_mode(0o444);
        header.set_cksum();
        builder.append(&header, data.as_slice()).unwrap();
    }
    builder.into_inner().unwrap()
}

fn disk(bytes: &[u8]) -> RamDisk {
    let mut disk = RamDisk::new(bytes.len().div_ceil(SECTOR_SIZE) as u64);
    disk.bytes_mut()[..bytes.len()].copy_from_slice(bytes);
    disk
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8).collect()
}

#[test]
fn the_index_of_an_archive_names_every_file_with_its_size_and_data() {
    let files = [
        ("bin/hello", pattern(10_000, 1)),
        ("empty", Vec::new()),
        ("data/exact", pattern(8192, 2)),
        ("a/very/long/directory/name/that/needs/the/ustar/prefix/field/because/it/is/longer/than/one/hundred/bytes/in/all/file.bin", pattern(700, 3)),
    ];
    let mut disk = disk(&archive(&files));
    let table = FileTable::read(&mut disk).unwrap();
    assert_eq!(table.len(), files.len());
    for (i, (name, data)) in files.iter().enumerate() {
        let id = table.find(name).unwrap_or_else(|| panic!("{name} not found"));
        assert_eq!(id, FileId(i as u16), "ids follow archive order");
        let entry = table.get(id).unwrap();
        assert_eq!(entry.size, data.len() as u64);
        assert_eq!(entry.pages(), (data.len() as u64).div_ceil(PAGE_SIZE));
        for page in 0..entry.pages() {
            let mut buf = [0xaau8; PAGE_SIZE as usize];
            table.read_page(&mut disk, id, page, &mut buf).unwrap();
            let from = (page * PAGE_SIZE) as usize;
            let bytes = (data.len() - from).min(PAGE_SIZE as usize);
            assert_eq!(&buf[..bytes], &data[from..from + bytes], "{name} page {page}");
            assert!(buf[bytes..].iter().all(|&b| b == 0), "{name} page {page}: tail not zero");
        }
        assert_eq!(
            table.read_page(&mut disk, id, entry.pages(), &mut [0; PAGE_SIZE as usize]),
            Err(FileError::PastEnd { page: entry.pages(), size: entry.size })
        );
    }
    assert_eq!(table.find("missing"), None);
    assert_eq!(table.read_page(&mut disk, FileId(99), 0, &mut [0; 4096]), Err(FileError::NoSuchFile));
}

#[test]
fn a_page_read_touches_only_the_sectors_of_that_page() {
    let mut disk = disk(&archive(&[("f", pattern(3 * 4096 + 100, 9))]));
    let table = FileTable::read(&mut disk).unwrap();
    let before = disk.reads;
    table.read_page(&mut disk, FileId(0), 3, &mut [0; 4096]).unwrap();
    assert_eq!(disk.reads, before + 1, "one transfer per page");
    disk.failing = true;
    let failed = table.read_page(&mut disk, FileId(0), 0, &mut [0; 4096]);
    assert_eq!(failed, Err(FileError::Device(BlockError::Io)));
}

#[test]
fn directories_are_skipped_and_an_empty_archive_is_an_empty_table() {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_path("bin/").unwrap();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    dir.set_cksum();
    builder.append(&dir, std::io::empty()).unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_path("bin/x").unwrap();
    header.set_size(3);
    header.set_cksum();
    builder.append(&header, &b"abc"[..]).unwrap();
    let table = FileTable::read(&mut disk(&builder.into_inner().unwrap())).unwrap();
    assert_eq!(table.iter().map(|(_, f)| f.name.as_str()).collect::<Vec<_>>(), ["bin/x"]);
    assert!(FileTable::read(&mut disk(&[0; 1024])).unwrap().is_empty());
}

/// The header block of the first entry, for corrupting.
fn one_file() -> Vec<u8> {
    archive(&[("file", pattern(2000, 4))])
}

fn refix_checksum(bytes: &mut [u8]) {
    bytes[148..156].copy_from_slice(b"        ");
    let sum = ustar::checksum(bytes[..512].try_into().unwrap());
    bytes[148..156].copy_from_slice(std::format!("{sum:06o}\0 ").as_bytes());
}

#[test]
fn malformed_archives_are_refused_with_the_reason() {
    let good = one_file();
    let read = |bytes: &[u8]| FileTable::read(&mut disk(bytes)).map(|t| t.len());
    assert_eq!(read(&good), Ok(1));

    // The disk ends in the middle of the data, or before the end block.
    assert_eq!(read(&good[..1024]), Err(ArchiveError::RunsPastDisk { sector: 0, size: 2000 }));
    assert_eq!(read(&good[..512 * 5]), Err(ArchiveError::Truncated { sector: 5 }));

    let mut bad_sum = good.clone();
    bad_sum[0] ^= 1;
    assert!(matches!(
        read(&bad_sum),
        Err(ArchiveError::BadHeader { sector: 0, error: HeaderError::BadChecksum { .. } })
    ));

    let mut huge = good.clone();
    huge[124..136].copy_from_slice(b"77777777777\0");
    refix_checksum(&mut huge);
    assert!(matches!(read(&huge), Err(ArchiveError::RunsPastDisk { sector: 0, .. })));

    let mut not_octal = good.clone();
    not_octal[124..136].copy_from_slice(b"0000000009x\0");
    refix_checksum(&mut not_octal);
    let error = HeaderError::BadNumber { field: "size" };
    assert_eq!(read(&not_octal), Err(ArchiveError::BadHeader { sector: 0, error }));

    let mut not_tar = good.clone();
    not_tar[257..263].copy_from_slice(b"nope\0\0");
    assert_eq!(read(&not_tar), Err(ArchiveError::BadHeader { sector: 0, error: HeaderError::NotUstar }));

    let mut long_name = good.clone();
    long_name[156] = b'L';
    refix_checksum(&mut long_name);
    assert_eq!(read(&long_name), Err(ArchiveError::LongName { sector: 0 }));

    let twice = archive(&[("same", Vec::new()), ("same", Vec::new())]);
    assert_eq!(read(&twice), Err(ArchiveError::Duplicate { sector: 1 }));

    let mut failing = disk(&good);
    failing.failing = true;
    assert_eq!(FileTable::read(&mut failing).map(|t| t.len()), Err(ArchiveError::Device(BlockError::Io)));
}

#[test]
fn an_archive_of_more_files_than_ids_allows_is_refused() {
    let names: Vec<std::string::String> = (0..=MAX_FILES).map(|i| std::format!("f{i}")).collect();
    let files: Vec<(&str, Vec<u8>)> = names.iter().map(|n| (n.as_str(), Vec::new())).collect();
    assert_eq!(
        FileTable::read(&mut disk(&archive(&files))).map(|t| t.len()),
        Err(ArchiveError::TooManyFiles)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Any corruption of an archive is read or refused, never a panic, and
    /// what is read stays inside the disk.
    #[test]
    fn corrupt_archives_never_panic(flips in proptest::collection::vec((0usize..4096, any::<u8>()), 1..16)) {
        let mut bytes = archive(&[("a", pattern(1500, 5)), ("b/c", pattern(5000, 6))]);
        for (at, value) in flips {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        let mut disk = disk(&bytes);
        if let Ok(table) = FileTable::read(&mut disk) {
            for (id, file) in table.iter() {
                prop_assert!(file.first_sector + file.size.div_ceil(512) <= disk.capacity());
                for page in 0..file.pages() {
                    prop_assert!(table.read_page(&mut disk, id, page, &mut [0; 4096]).is_ok());
                }
            }
        }
    }
}

fn key(file: u16, page: u64) -> FilePage {
    FilePage { file: FileId(file), page }
}

#[test]
fn a_cached_page_is_shared_counted_and_dropped_only_when_unmapped() {
    let mut cache = PageCache::new(4).unwrap();
    assert_eq!(cache.map(key(1, 7)), None, "a miss");
    cache.insert(key(1, 7), Pfn::new(100), true).unwrap();
    assert_eq!(cache.insert(key(1, 7), Pfn::new(101), false), Err(InsertError::Present));
    assert_eq!(cache.map(key(1, 7)), Some(Pfn::new(100)), "a second mapping shares the frame");
    let stats = cache.stats();
    assert_eq!((stats.pages, stats.mapped_pages, stats.mappings, stats.hits, stats.misses), (1, 1, 2, 1, 1));
    assert_eq!(cache.remove(key(1, 7)), Err(RemoveError::Mapped(2)));
    assert!(cache.unmap(key(1, 7)) && cache.unmap(key(1, 7)));
    assert!(!cache.unmap(key(1, 7)), "no mapping left to drop");
    assert!(cache.take_referenced(key(1, 7)));
    assert!(!cache.take_referenced(key(1, 7)));
    assert_eq!(cache.remove(key(1, 7)), Ok(Pfn::new(100)));
    assert_eq!(cache.remove(key(1, 7)), Err(RemoveError::NotCached));
    assert_eq!(cache.stats().dropped, 1);
    for page in 0..4 {
        cache.insert(key(2, page), Pfn::new(200 + page), false).unwrap();
    }
    assert!(cache.is_full());
    assert_eq!(cache.insert(key(2, 9), Pfn::new(300), false), Err(InsertError::Full));
    assert_eq!(cache.insert(key(2, 9), Pfn::new(1 << 32), false), Err(InsertError::FrameTooHigh));
}

#[derive(Clone, Debug)]
enum Op {
    Map(u16, u64),
    Insert(u16, u64, bool),
    Unmap(u16, u64),
    Remove(u16, u64),
}

fn op() -> impl Strategy<Value = Op> {
    // Few distinct keys, so runs collide and removals shift entries.
    let k = || (0u16..3, 0u64..24);
    prop_oneof![
        k().prop_map(|(f, p)| Op::Map(f, p)),
        (k(), any::<bool>()).prop_map(|((f, p), m)| Op::Insert(f, p, m)),
        k().prop_map(|(f, p)| Op::Unmap(f, p)),
        k().prop_map(|(f, p)| Op::Remove(f, p)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The cache against a `HashMap` model: same answers, same counts.
    #[test]
    fn the_cache_behaves_like_a_map(ops in proptest::collection::vec(op(), 1..400)) {
        let mut cache = PageCache::new(40).unwrap();
        let mut model: HashMap<(u16, u64), (u64, u32)> = HashMap::new();
        let mut next_frame = 1;
        for op in ops {
            match op {
                Op::Map(f, p) => {
                    let expected = model.get_mut(&(f, p)).map(|e| { e.1 += 1; Pfn::new(e.0) });
                    prop_assert_eq!(cache.map(key(f, p)), expected);
                }
                Op::Insert(f, p, mapped) => {
                    next_frame += 1;
                    let result = cache.insert(key(f, p), Pfn::new(next_frame), mapped);
                    if model.contains_key(&(f, p)) {
                        prop_assert_eq!(result, Err(InsertError::Present));
                    } else if model.len() >= 40 {
                        prop_assert_eq!(result, Err(InsertError::Full));
                    } else {
                        prop_assert_eq!(result, Ok(()));
                        model.insert((f, p), (next_frame, u32::from(mapped)));
                    }
                }
                Op::Unmap(f, p) => {
                    let expected = model.get_mut(&(f, p)).is_some_and(|e| e.1 > 0 && { e.1 -= 1; true });
                    prop_assert_eq!(cache.unmap(key(f, p)), expected);
                }
                Op::Remove(f, p) => {
                    let expected = match model.get(&(f, p)) {
                        None => Err(RemoveError::NotCached),
                        Some(&(_, m)) if m > 0 => Err(RemoveError::Mapped(m)),
                        Some(&(frame, _)) => Ok(Pfn::new(frame)),
                    };
                    if expected.is_ok() {
                        model.remove(&(f, p));
                    }
                    prop_assert_eq!(cache.remove(key(f, p)), expected);
                }
            }
            let stats = cache.stats();
            prop_assert_eq!(stats.pages, model.len() as u64);
            prop_assert_eq!(stats.mappings, model.values().map(|e| u64::from(e.1)).sum::<u64>());
            prop_assert_eq!(stats.mapped_pages, model.values().filter(|e| e.1 > 0).count() as u64);
        }
        let mut listed: Vec<_> = cache.iter().map(|(k, f, m)| ((k.file.0, k.page), (f.number(), m))).collect();
        let mut expected: Vec<_> = model.into_iter().collect();
        listed.sort();
        expected.sort();
        prop_assert_eq!(listed, expected);
    }
}
