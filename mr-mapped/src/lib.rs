//! Read-only mappings of files that another process may shrink.
//!
//! Reading a page of a file mapping that lies past the file's end raises
//! SIGBUS, and SIGBUS kills the process: an input truncated during a job
//! (a log rotated by copytruncate, a file rewritten in place) used to kill
//! every worker that mapped it, one replacement after another. Here every
//! mapping is registered in a fixed table, and the first one installs a
//! SIGBUS handler. For a fault inside a registered mapping, the handler
//! maps zeros over the rest of that mapping (from the faulting page on),
//! marks the mapping as shrunk and lets the read go on. The reader
//! finishes its pass over bytes that are wrong, then asks
//! [`MappedFile::shrank`], throws its result away and names the file. A
//! SIGBUS anywhere else goes to the handler that was there before (Rust's
//! own, or the default), so it kills the process as it always did.
//!
//! A fault comes only for pages wholly past the new end: the rest of the
//! page the file now ends in reads as zeros without one (and a system call
//! handed such bytes fails with EFAULT rather than faulting). So `shrank`
//! also compares the file's size now with the mapping's: a file cut by a
//! few bytes is caught as well as one cut by megabytes.
//!
//! A file changed in place without shrinking gives other bytes, not a
//! fault: callers catch that by the identity they check (size, times,
//! inode) or the hashes they keep, as before.

use memmap2::Mmap;
use std::fs::File;
use std::io;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// How many mappings may be registered at once: the kernel's own default
/// limit on a process's mappings (`vm.max_map_count`, 65,530) is about the
/// same, so a process could not hold more anyway.
const SLOTS: usize = 1 << 16;

/// A slot's `start` while it is being filled or emptied: never a mapping's
/// address (mappings start on a page boundary), so the handler skips it.
const BUSY: usize = 1;

/// One registered mapping: its address range and whether it lost pages.
struct Slot {
    /// The mapping's first byte; 0 when the slot is free, [`BUSY`] while
    /// it changes.
    start: AtomicUsize,
    /// One past the mapping's last page.
    end: AtomicUsize,
    /// Whether a read found a page gone (the file shrank).
    shrank: AtomicBool,
}

/// Every registered mapping. Zero-initialised, so it costs no memory until
/// slots are used; the handler reads it with atomics only (it may run in
/// the middle of any code, so it takes no lock).
static TABLE: [Slot; SLOTS] = [const {
    Slot {
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        shrank: AtomicBool::new(false),
    }
}; SLOTS];

/// Where the search for a free slot starts (spreads registrations out).
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The system's page size, read when the handler is installed.
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// The SIGBUS action in place before ours, to pass other faults on to.
static PREVIOUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(std::ptr::null_mut());

/// A read-only mapping of a whole file, guarded against the file shrinking.
pub struct MappedFile {
    map: Mmap,
    /// The file, to ask its size when asked whether it shrank.
    file: File,
    /// The mapping's slot in [`TABLE`]; None for an empty file (nothing is
    /// mapped, nothing can fault).
    slot: Option<usize>,
}

impl MappedFile {
    /// Maps `file` as it is now (its current length), read-only.
    pub fn map(file: &File) -> io::Result<MappedFile> {
        install()?;
        // SAFETY: the mapping is only ever read. A file that shrinks under
        // it is what the guard catches (pages gone read as zeros and set
        // `shrank`); a file changed in place gives other bytes, which the
        // callers' identity checks and hashes catch. No `&mut` is made.
        let map = unsafe { Mmap::map(file)? };
        let file = file.try_clone()?;
        if map.is_empty() {
            return Ok(MappedFile {
                map,
                file,
                slot: None,
            });
        }
        let start = map.as_ptr() as usize;
        let page = PAGE.load(Ordering::Relaxed);
        let end = (start + map.len()).div_ceil(page) * page;
        let slot = register(start, end)?;
        Ok(MappedFile {
            map,
            file,
            slot: Some(slot),
        })
    }

    /// Whether the file shrank below the mapping: a read found pages gone,
    /// or the file is now shorter than it was mapped (its last page's tail
    /// reads as zeros without a fault). Anything made from the mapping is
    /// then wrong and must be thrown away. Asked once reading is done.
    pub fn shrank(&self) -> bool {
        let faulted = self
            .slot
            .is_some_and(|s| TABLE[s].shrank.load(Ordering::Acquire));
        // A size that cannot be read is taken for a shrink: the bytes
        // cannot be vouched for.
        let shorter = self
            .file
            .metadata()
            .map_or(true, |m| m.len() < self.map.len() as u64);
        faulted || shorter
    }

    /// Tells the kernel the mapping will be read from start to end.
    pub fn advise_sequential(&self) {
        let _ = self.map.advise(memmap2::Advice::Sequential);
    }

    /// Lets the kernel drop the pages of `len` bytes at `offset` from the
    /// process (they stay in the page cache); out-of-range is clamped.
    pub fn release(&self, offset: usize, len: usize) {
        let end = offset.saturating_add(len).min(self.map.len());
        if end > offset {
            // SAFETY: a read-only shared file mapping (or zeros the guard
            // put in its place): a dropped page is read back unchanged from
            // the file, or as zeros, on the next touch; nothing is lost.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    offset,
                    end - offset,
                )
            };
        }
    }
}

impl Deref for MappedFile {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // The slot is freed before the mapping goes (the field drops after
        // this), so no new mapping at the same address is ever mistaken
        // for this one.
        if let Some(s) = self.slot {
            release_slot(s);
        }
    }
}

/// Takes a free slot for the mapping `[start, end)`.
fn register(start: usize, end: usize) -> io::Result<usize> {
    let first = NEXT.fetch_add(1, Ordering::Relaxed);
    for i in 0..SLOTS {
        let s = (first + i) % SLOTS;
        let slot = &TABLE[s];
        if slot
            .start
            .compare_exchange(0, BUSY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            slot.shrank.store(false, Ordering::Relaxed);
            slot.end.store(end, Ordering::Release);
            // Published last: a handler that sees this start sees its end.
            slot.start.store(start, Ordering::Release);
            return Ok(s);
        }
    }
    Err(io::Error::other(format!(
        "more than {SLOTS} files are mapped at once"
    )))
}

/// Frees slot `s`.
fn release_slot(s: usize) {
    let slot = &TABLE[s];
    slot.start.store(BUSY, Ordering::Release);
    slot.end.store(0, Ordering::Release);
    slot.start.store(0, Ordering::Release);
}

/// The registered mapping holding `addr`: its slot and end. Only atomics:
/// this runs in the signal handler.
fn owner(addr: usize) -> Option<(&'static Slot, usize)> {
    TABLE.iter().find_map(|slot| {
        let start = slot.start.load(Ordering::Acquire);
        if start <= BUSY || addr < start {
            return None;
        }
        let end = slot.end.load(Ordering::Acquire);
        // A slot emptied and refilled between the two loads would pair one
        // mapping's start with another's end: read the start again.
        (slot.start.load(Ordering::Acquire) == start && addr < end).then_some((slot, end))
    })
}

/// Installs the SIGBUS handler, once per process.
fn install() -> io::Result<()> {
    static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();
    let done = INSTALLED.get_or_init(|| {
        // SAFETY: sysconf and sigaction with valid arguments; the old
        // action is kept (leaked: it lives as long as the process) before
        // ours is in place, so the handler always finds it.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE);
            if page > 0 {
                PAGE.store(page as usize, Ordering::Relaxed);
            }
            let previous: *mut libc::sigaction = Box::into_raw(Box::new(std::mem::zeroed()));
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), previous) != 0 {
                return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
            }
            PREVIOUS.store(previous, Ordering::Release);
            let mut ours: libc::sigaction = std::mem::zeroed();
            ours.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
            // SA_ONSTACK: run on the thread's signal stack where it has one
            // (Rust gives its threads one, for stack overflows).
            ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut ours.sa_mask);
            if libc::sigaction(libc::SIGBUS, &ours, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
            }
        }
        Ok(())
    });
    done.map_err(|e| {
        io::Error::other(format!(
            "cannot install the SIGBUS handler that guards mapped files: {}",
            io::Error::from_raw_os_error(e)
        ))
    })
}

/// The SIGBUS handler. A fault inside a registered mapping: zeros in place
/// of the rest of the mapping (the file shrank, so what follows the lost
/// page is gone too; one call rather than one fault per page) and the
/// mapping marked. Anything else: the action that was there before.
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let (addr, code) = unsafe { ((*info).si_addr() as usize, (*info).si_code) };
    // BUS_ADRERR: an address with nothing behind it (a page past the end
    // of its file); not a hardware memory error, not a signal sent by kill.
    if code == libc::BUS_ADRERR {
        if let Some((slot, end)) = owner(addr) {
            let page = PAGE.load(Ordering::Relaxed);
            let from = addr & !(page - 1);
            // SAFETY: replaces pages of a mapping this crate owns, which is
            // alive (a thread is reading it), with private zero pages;
            // mmap is a plain system call, safe in a signal handler. The
            // interrupted code's errno is put back after it.
            let errno = unsafe { *libc::__errno_location() };
            let p = unsafe {
                libc::mmap(
                    from as *mut libc::c_void,
                    end - from,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            // SAFETY: errno's location is the thread's own.
            unsafe { *libc::__errno_location() = errno };
            if p != libc::MAP_FAILED {
                slot.shrank.store(true, Ordering::Release);
                return;
            }
        }
    }
    // SAFETY: as for the handler itself.
    unsafe { pass_on(sig, info, ctx, code) }
}

/// Hands a SIGBUS that is not ours to the previous action; with none (the
/// default), restores the default so the fault kills the process when the
/// read runs again (or raises it again, for a signal that was sent).
unsafe fn pass_on(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
    code: libc::c_int,
) {
    let previous = PREVIOUS.load(Ordering::Acquire);
    // SAFETY: set before our handler was installed, never freed.
    if let Some(prev) = unsafe { previous.as_ref() } {
        let h = prev.sa_sigaction;
        if h != libc::SIG_DFL && h != libc::SIG_IGN {
            if prev.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: an SA_SIGINFO action's handler has this type.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(h) };
                f(sig, info, ctx);
            } else {
                // SAFETY: a plain action's handler has this type.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
                f(sig);
            }
            return;
        }
    }
    // SAFETY: sigaction and raise with valid arguments.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
        if code <= 0 {
            libc::raise(sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let bytes: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&bytes).unwrap();
        f.flush().unwrap();
        (f, bytes)
    }

    #[test]
    fn an_unchanged_file_reads_whole_and_is_not_shrunk() {
        let (f, bytes) = file_of(1 << 20);
        let m = MappedFile::map(f.as_file()).unwrap();
        assert_eq!(&m[..], &bytes[..]);
        assert!(!m.shrank());
    }

    #[test]
    fn a_file_truncated_under_its_mapping_reads_zeros_and_says_so() {
        let page = 4096;
        let (f, bytes) = file_of(64 * page + 100);
        let m = MappedFile::map(f.as_file()).unwrap();
        // Touch the start, so the pages that stay are mapped already.
        assert_eq!(m[0], b'a');
        let cut = 10 * page + 7;
        File::options()
            .write(true)
            .open(f.path())
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        // Without the guard this read is a SIGBUS that kills the tests.
        let seen: Vec<u8> = m.to_vec();
        assert!(m.shrank());
        assert_eq!(seen.len(), bytes.len());
        assert_eq!(&seen[..cut], &bytes[..cut]);
        assert!(seen[11 * page..].iter().all(|&b| b == 0));
        // Another mapping of another file is untouched.
        let (g, other) = file_of(3 * page);
        let n = MappedFile::map(g.as_file()).unwrap();
        assert_eq!(&n[..], &other[..]);
        assert!(!n.shrank());
    }

    #[test]
    fn a_file_cut_inside_its_last_page_is_caught_without_a_fault() {
        let (f, bytes) = file_of(10_000);
        let m = MappedFile::map(f.as_file()).unwrap();
        f.as_file().set_len(9_000).unwrap();
        // No fault: the tail of the last page reads as zeros.
        assert_eq!(&m[..9_000], &bytes[..9_000]);
        assert!(m[9_000..].iter().all(|&b| b == 0));
        assert!(m.shrank());
        // Grown instead: nothing lost, nothing to say.
        let (g, _) = file_of(5_000);
        let n = MappedFile::map(g.as_file()).unwrap();
        g.as_file().set_len(6_000).unwrap();
        assert!(!n.shrank());
    }

    #[test]
    fn an_empty_file_maps_to_nothing() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let m = MappedFile::map(f.as_file()).unwrap();
        assert!(m.is_empty() && !m.shrank());
    }

    #[test]
    fn slots_are_given_back() {
        let (f, _) = file_of(4096);
        for _ in 0..2 * SLOTS {
            let m = MappedFile::map(f.as_file()).unwrap();
            assert!(!m.shrank());
        }
    }

    /// The child of the next test: an unguarded mapping (plain memmap2)
    /// read past the end of its file, with the guard installed.
    #[test]
    fn unguarded_child() {
        let Some(path) = std::env::var_os("MR_MAPPED_UNGUARDED") else {
            return;
        };
        let (f, _) = file_of(16 * 4096);
        drop(MappedFile::map(f.as_file()).unwrap());
        let m = unsafe { Mmap::map(f.as_file()).unwrap() };
        f.as_file().set_len(0).unwrap();
        std::fs::write(path, b"reading").unwrap();
        // Must die here of SIGBUS: the guard only covers its own mappings.
        let sum: u64 = m.iter().map(|&b| b as u64).sum();
        println!("survived with {sum}");
    }

    #[test]
    fn a_fault_outside_the_guarded_mappings_still_kills() {
        use std::os::unix::process::ExitStatusExt;
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("marker");
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "tests::unguarded_child", "--nocapture"])
            .env("MR_MAPPED_UNGUARDED", &marker)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(marker.exists(), "the child did not get to its read");
        assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}");
    }
}
