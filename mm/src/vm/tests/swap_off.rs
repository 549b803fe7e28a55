//! The address-space half of `swapoff` (`AddressSpace::swap_in_all`):
//! every page in swap comes back, and a failure part way loses nothing.

use super::*;

/// Two regions of `pages` written pages each, evicted; a third page of
/// the first written again after it came back and left again, so its
/// slot is out of order. The regions' starts.
fn swapped_space(pages: u64) -> (Space, [u64; 2]) {
    let mut s = space_with_swap(4 * pages);
    let rw = Prot::USER_RW;
    let a = s.reserve(pages * PAGE_SIZE, rw, RegionKind::Anonymous).unwrap().as_u64();
    let b = s.reserve(pages * PAGE_SIZE, Prot::USER_READ, RegionKind::Anonymous).unwrap().as_u64();
    s.protect(b, pages * PAGE_SIZE, rw).unwrap();
    // One region after the other, so that their frames, and then their
    // slots, follow their addresses and the walk can read ahead.
    for (start, word) in [(a, 0xa000), (b, 0xb000)] {
        for i in 0..pages {
            write_word(&mut s, start + i * PAGE_SIZE, word + i);
        }
    }
    // b's pages read-only again: swap_in_all must keep each page's protection.
    s.protect(b, pages * PAGE_SIZE, Prot::USER_READ).unwrap();
    assert_eq!(reclaim(&mut s, 2 * pages).evicted, 2 * pages);
    assert_eq!(read_word(&mut s, a + 2 * PAGE_SIZE), 0xa002);
    write_word(&mut s, a + 2 * PAGE_SIZE, 0xa0a2);
    assert_eq!(reclaim(&mut s, 1).evicted, 1);
    assert_eq!(s.stats().swapped_pages, 2 * pages);
    (s, [a, b])
}

#[test]
fn every_page_in_swap_comes_back_with_its_contents_and_protection() {
    let (mut s, [a, b]) = swapped_space(24);
    let mut brought_in = 0;
    assert_eq!(s.swap_in_all(&mut brought_in), Ok(()));
    let st = s.stats();
    assert_eq!((brought_in, st.swapped_pages, st.resident_pages), (48, 0, 48));
    assert!(st.faults.read_ahead > 24, "a sequential walk reads ahead: {:?}", st.faults);
    assert!(s.platform().swap.is_empty(), "every slot free");
    for i in 0..24 {
        let expected = if i == 2 { 0xa0a2 } else { 0xa000 + i };
        assert_eq!(read_word(&mut s, a + i * PAGE_SIZE), expected, "page {i} of a");
        assert_eq!(read_word(&mut s, b + i * PAGE_SIZE), 0xb000 + i, "page {i} of b");
        let m = walk(&s, UserAddr::new(b + i * PAGE_SIZE)).unwrap();
        assert_eq!(m.prot, Prot::USER_READ, "page {i} of b keeps its protection");
    }
    assert_eq!(s.stats().faults.swapped_in, st.faults.swapped_in, "reading them faulted nothing in");
    // Nothing left: a second call does nothing.
    assert_eq!(s.swap_in_all(&mut brought_in), Ok(()));
    assert_eq!(brought_in, 48);
    done(s);
}

#[test]
fn a_shortage_part_way_keeps_what_came_back_and_a_second_call_goes_on() {
    let (mut s, [a, b]) = swapped_space(16);
    s.platform_mut().frames_left = Some(5);
    let mut brought_in = 0;
    assert_eq!(s.swap_in_all(&mut brought_in), Err(VmError::OutOfMemory));
    let st = s.stats();
    assert_eq!((brought_in, st.resident_pages, st.swapped_pages), (5, 5, 27), "{st:?}");
    s.platform_mut().frames_left = None;
    assert_eq!(s.swap_in_all(&mut brought_in), Ok(()));
    assert_eq!((brought_in, s.stats().swapped_pages), (32, 0));
    for i in 0..16 {
        let expected = if i == 2 { 0xa0a2 } else { 0xa000 + i };
        assert_eq!(read_word(&mut s, a + i * PAGE_SIZE), expected);
        assert_eq!(read_word(&mut s, b + i * PAGE_SIZE), 0xb000 + i);
    }
    assert!(s.platform().swap.is_empty());
    done(s);
}

#[test]
fn a_failing_disk_fails_the_call_with_the_page_still_in_swap() {
    let (mut s, [a, _]) = swapped_space(4);
    s.platform_mut().failing_swap_in = true;
    let mut brought_in = 0;
    assert!(matches!(s.swap_in_all(&mut brought_in), Err(VmError::SwapIn { .. })));
    assert_eq!((brought_in, s.stats().swapped_pages), (0, 8));
    s.platform_mut().failing_swap_in = false;
    assert_eq!(read_word(&mut s, a), 0xa000);
    done(s);
}
