//! The map's file and its mapping: race-free creation, growth, remapping,
//! hole punching, and the kernel file locks (OFD locks) used for creation
//! and for death detection.

use crate::error::{Error, Result};
use crate::format::layout::{INIT_LOCK_BYTE, MAGIC_PENDING};
use std::ffi::CStr;
use std::os::fd::RawFd;
use std::ptr;

/// How long a wait on another live process may see no progress before it
/// gives up, unless the handle sets another (`wait_timeout`). Long enough
/// for a holder descheduled on a loaded machine, or briefly stopped
/// (SIGSTOP, a debugger); short enough that a stuck process is reported
/// while someone still looks.
pub const DEFAULT_WAIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A file mapped `MAP_SHARED` into this process.
pub struct Region {
    /// The data descriptor: mapping, sizing, hole punching, creation lock.
    fd: RawFd,
    /// A second open file description of the same file that carries this
    /// handle's slot lock and asks about others'. It is never mapped: a
    /// mapping keeps its description (and so its OFD locks) alive, and a
    /// forked child inherits the mapping.
    lock_fd: RawFd,
    base: *mut u8,
    len: usize,
    path: String,
    /// Our slot in the SIGBUS watch list (see `sigbus`).
    watch: Option<usize>,
    /// What the map lives in.
    kind: Kind,
    /// The file is in memory (tmpfs, a memfd): allocating its blocks
    /// already takes the memory, so mapping them ahead costs none.
    in_memory: bool,
}

/// What a map lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A file opened by path.
    File,
    /// A memfd made by `new_memfd` or attached by `new_from_fd`.
    Memfd,
    /// An unnamed memfd that only `fork` shares (`new(undef, ...)`).
    Anonymous,
    /// A frozen file mapped read-only (`new_readonly`).
    ReadOnly,
}

/// Where to open a map from.
pub enum Source<'a> {
    /// Create or attach the file at this path.
    Path(&'a CStr),
    /// Create a memfd with this name.
    Memfd(&'a CStr),
    /// Create an anonymous map (a memfd nobody else can name).
    Anonymous,
    /// Attach to the map in this descriptor (it is duplicated).
    Fd(RawFd),
    /// Attach to the frozen map at this path, read-only.
    ReadOnly(&'a CStr),
}

/// What `Region::open` found.
pub enum Opened {
    /// The file is new, or was left half-initialized: the caller must
    /// initialize it (the creation lock is held until `finish_open`).
    Fresh(Region),
    /// A finished (or foreign) file: the caller validates it.
    Existing(Region),
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

impl Region {
    /// Open or create `path` with the creation protocol of DESIGN.md:
    /// O_NOFOLLOW | O_CLOEXEC, the exact `mode` on creation, and the
    /// creation lock held on return (release it with [`Region::finish_open`]).
    pub fn open(path: &CStr, mode: u32) -> Result<Opened> {
        let shown = path.to_string_lossy().into_owned();
        let fd = loop {
            // SAFETY: `path` is NUL-terminated; open has no other preconditions.
            let fd = unsafe {
                libc::open(
                    path.as_ptr(),
                    libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                )
            };
            if fd >= 0 {
                break fd;
            }
            match errno() {
                libc::ENOENT => {}
                libc::ELOOP => {
                    return Err(Error::new(format!(
                        "open({shown}): is a symbolic link (refused; give the real path)"
                    )))
                }
                _ => return Err(Error::os("open", &shown)),
            }
            // SAFETY: as above.
            let fd = unsafe {
                libc::open(
                    path.as_ptr(),
                    libc::O_RDWR
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_CLOEXEC
                        | libc::O_NOFOLLOW,
                    mode as libc::c_uint,
                )
            };
            if fd >= 0 {
                // The mode is applied exactly: umask does not narrow it.
                fchmod_exact(fd, mode, &shown)?;
                break fd;
            }
            if errno() != libc::EEXIST {
                return Err(Error::os("open", &shown));
            }
            // Someone else created it between our two opens: attach to theirs.
        };
        let r = Region::with_fd(fd, shown, Kind::File)?;
        r.settle(true)
    }

    fn with_fd(fd: RawFd, path: String, kind: Kind) -> Result<Region> {
        let mut r = Region {
            fd,
            lock_fd: -1,
            watch: None,
            base: ptr::null_mut(),
            len: 0,
            path,
            kind,
            in_memory: false,
        };
        r.check_regular()?;
        r.in_memory = fs_in_memory(fd);
        if kind != Kind::ReadOnly {
            r.lock_fd = reopen(fd).map_err(|_| Error::os("open", &r.path))?;
        }
        Ok(r)
    }

    /// Take the creation lock and say whether the map must be initialized
    /// (`may_create`) or attached.
    fn settle(mut self, may_create: bool) -> Result<Opened> {
        let fd = self.fd;
        // Serialize creation: whoever holds this lock either finds a finished
        // map or (re)initializes the file. A creator that died released it.
        if self.kind != Kind::ReadOnly {
            self.creation_lock(DEFAULT_WAIT_TIMEOUT)?;
        }
        let size = self.file_size()?;
        let mut magic = [0u8; 8];
        let fresh = size == 0
            || (self.pread(&mut magic, 0)? == 8 && u64::from_le_bytes(magic) == MAGIC_PENDING);
        if fresh && may_create {
            // Start over from an empty file, marked pending first.
            self.truncate(0)?;
            let n = unsafe_pwrite(fd, &MAGIC_PENDING.to_le_bytes(), 0);
            if n != 8 {
                return Err(Error::os("write", &self.path));
            }
            Ok(Opened::Fresh(self))
        } else {
            if size >= 4096 {
                self.map(size)?;
            }
            Ok(Opened::Existing(self))
        }
    }

    /// Take the creation lock, waiting (asleep, in growing naps) while
    /// another live process holds it, but not without end: a creator makes
    /// its map in well under a second, and one that died has lost the lock,
    /// so a holder that keeps it for `limit` is stuck, and the open croaks.
    fn creation_lock(&self, limit: std::time::Duration) -> Result<()> {
        let start = std::time::Instant::now();
        let mut nap = std::time::Duration::from_micros(50);
        loop {
            match ofd_lock(self.fd, INIT_LOCK_BYTE, libc::F_WRLCK as i16, false) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(libc::EBADF) => {
                    return Err(Error::new(format!(
                        "{}: not open for reading and writing (a map needs both; \
                         new_readonly attaches frozen maps read-only)",
                        self.path
                    )))
                }
                Err(_) => return Err(Error::os("lock", &self.path)),
            }
            if start.elapsed() >= limit {
                return Err(Error::new(format!(
                    "{}: timed out after {} s waiting for the creation lock, held by \
                     another process that is creating or repairing the map and makes \
                     no progress",
                    self.path,
                    limit.as_secs_f64()
                )));
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(std::time::Duration::from_millis(10));
        }
    }

    /// Open a map from any [`Source`]; see [`Region::open`] for paths.
    pub fn open_source(src: &Source<'_>, mode: u32) -> Result<Opened> {
        match *src {
            Source::Path(p) => Region::open(p, mode),
            Source::Memfd(name) => {
                // SAFETY: name is NUL-terminated.
                let fd = unsafe {
                    libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
                };
                let shown = format!("memfd:{}", name.to_string_lossy());
                if fd < 0 {
                    return Err(Error::os("memfd_create", &shown));
                }
                fchmod_exact(fd, mode, &shown)?;
                Region::with_fd(fd, shown, Kind::Memfd)?.settle(true)
            }
            Source::Anonymous => {
                // SAFETY: the name is a NUL-terminated literal.
                let fd =
                    unsafe { libc::memfd_create(c"dhms-anonymous".as_ptr(), libc::MFD_CLOEXEC) };
                if fd < 0 {
                    return Err(Error::os("memfd_create", "anonymous map"));
                }
                fchmod_exact(fd, mode, "anonymous map")?;
                Region::with_fd(fd, "anonymous map".into(), Kind::Anonymous)?.settle(true)
            }
            Source::Fd(theirs) => {
                // SAFETY: F_DUPFD_CLOEXEC on any descriptor; errors are reported.
                let fd = unsafe { libc::fcntl(theirs, libc::F_DUPFD_CLOEXEC, 0) };
                let shown = format!("fd {theirs}");
                if fd < 0 {
                    return Err(Error::os("dup", &shown));
                }
                Region::with_fd(fd, shown, Kind::Memfd)?.settle(false)
            }
            Source::ReadOnly(path) => {
                let shown = path.to_string_lossy().into_owned();
                // SAFETY: path is NUL-terminated.
                let fd = unsafe {
                    libc::open(
                        path.as_ptr(),
                        libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                    )
                };
                if fd < 0 {
                    return Err(if errno() == libc::ELOOP {
                        Error::new(format!(
                            "open({shown}): is a symbolic link (refused; give the real path)"
                        ))
                    } else {
                        Error::os("open", &shown)
                    });
                }
                Region::with_fd(fd, shown, Kind::ReadOnly)?.settle(false)
            }
        }
    }

    /// What the map lives in.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Release the creation lock taken by [`Region::open`].
    pub fn finish_open(&self) {
        if self.kind != Kind::ReadOnly {
            let _ = ofd_lock(self.fd, INIT_LOCK_BYTE, libc::F_UNLCK as i16, false);
        }
    }

    fn check_regular(&self) -> Result<()> {
        // SAFETY: zeroed stat is a valid out-buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fd is open; st is a valid out-pointer.
        if unsafe { libc::fstat(self.fd, &mut st) } != 0 {
            return Err(Error::os("fstat", &self.path));
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(Error::new(format!(
                "{}: not a Data::HashMap::Shared file (not a regular file, so no map magic)",
                self.path
            )));
        }
        Ok(())
    }

    /// The path given at open.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The data descriptor.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// The lock descriptor (see the field's comment).
    pub fn lock_fd(&self) -> RawFd {
        self.lock_fd
    }

    /// Current size of the file according to the kernel.
    pub fn file_size(&self) -> Result<u64> {
        // SAFETY: as in check_regular.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fd is open; st is a valid out-pointer.
        if unsafe { libc::fstat(self.fd, &mut st) } != 0 {
            return Err(Error::os("fstat", &self.path));
        }
        Ok(st.st_size as u64)
    }

    fn pread(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        // SAFETY: buf is a valid writable buffer of buf.len() bytes.
        let n = unsafe { libc::pread(self.fd, buf.as_mut_ptr().cast(), buf.len(), off as i64) };
        if n < 0 {
            return Err(Error::os("read", &self.path));
        }
        Ok(n as usize)
    }

    /// Set the file's length (sparse when growing). A file system that
    /// refuses (a file size limit: EFBIG) gives a no-space error.
    pub fn truncate(&self, size: u64) -> Result<()> {
        // SAFETY: fd is open.
        let rc = without_sigxfsz(|| unsafe { libc::ftruncate(self.fd, size as i64) });
        if rc != 0 {
            return Err(match errno() {
                e if is_space_errno(e) => Error::no_space_errno("ftruncate", &self.path, e),
                _ => Error::os("ftruncate", &self.path),
            });
        }
        Ok(())
    }

    /// Allocate the file's blocks for `[off, off+len)` before the map first
    /// writes there (DESIGN.md invariant 11), so that a full file system is
    /// an error return here and never a SIGBUS on a store. The range lies
    /// inside the file; bytes already there are left as they are.
    pub fn allocate(&self, off: u64, len: u64) -> Result<()> {
        if len == 0 || self.kind == Kind::ReadOnly {
            return Ok(());
        }
        // posix_fallocate tries fallocate(2) and, on a file system without
        // it, writes a zero into each block that reads as zero. That
        // fallback is safe for the table and the arena: those ranges are
        // unused (the inactive region, the arena above its top) and the
        // writer lock keeps other writers out. Slot pages are allocated
        // without the lock, so there the fallback could race with another
        // process's first slot store; it only runs on file systems without
        // fallocate (NFS, some FUSE), whose shared mappings are not
        // coherent between hosts anyway: maps belong on local file systems.
        // SAFETY: fd is open; the call has no memory arguments.
        let rc = without_sigxfsz(|| unsafe {
            libc::posix_fallocate(self.fd, off as libc::off_t, len as libc::off_t)
        });
        match rc {
            0 => Ok(()),
            e if is_space_errno(e) => Err(Error::no_space_errno("fallocate", &self.path, e)),
            e => {
                let shown = std::io::Error::from_raw_os_error(e);
                Err(Error::new(format!("fallocate({}): {shown}", self.path)))
            }
        }
    }

    /// Map the first `len` bytes (replacing any earlier mapping).
    pub fn map(&mut self, len: u64) -> Result<()> {
        let len = usize::try_from(len).map_err(|_| Error::new("map too large"))?;
        // SAFETY: a fresh shared mapping of our own fd; the kernel validates
        // the arguments. Accesses are bounded by `len` and the file size.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                if self.kind == Kind::ReadOnly {
                    libc::PROT_READ
                } else {
                    libc::PROT_READ | libc::PROT_WRITE
                },
                libc::MAP_SHARED,
                self.fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::os("mmap", &self.path));
        }
        self.unmap();
        self.base = p.cast();
        self.len = len;
        self.watch = crate::os::sigbus::register(p as usize, len);
        Ok(())
    }

    /// True if the file was truncated under this mapping (a SIGBUS hit it).
    pub fn truncated(&self) -> bool {
        crate::os::sigbus::was_hit(self.watch)
    }

    /// Map `want` bytes of address space, or, if the system refuses that
    /// much (valgrind, a tight `ulimit -v`), the largest power-of-two
    /// fraction of it that still covers `need` bytes. Returns the length.
    pub fn map_reserving(&mut self, need: u64, want: u64) -> Result<u64> {
        let mut len = want.max(need);
        loop {
            match self.map(len) {
                Ok(()) => return Ok(len),
                Err(e) if len / 2 < need => return Err(e),
                Err(_) => len = (len / 2).max(need),
            }
        }
    }

    /// Grow (or shrink) the mapping to `len` bytes; it may move, so no
    /// pointer into the old mapping may be held across this call. Running
    /// out of address space is an error that says so.
    pub fn remap(&mut self, len: u64) -> Result<()> {
        let len = usize::try_from(len).map_err(|_| Error::new("map too large"))?;
        if self.base.is_null() {
            return self.map(len as u64);
        }
        // SAFETY: base/len describe a mapping we made; MREMAP_MAYMOVE lets
        // the kernel move it, and the caller holds no pointer into it.
        let p = unsafe { libc::mremap(self.base.cast(), self.len, len, libc::MREMAP_MAYMOVE) };
        if p == libc::MAP_FAILED {
            return Err(Error::new(format!(
                "{}: out of address space: cannot map {len} bytes of it ({}); \
                 close handles or maps this process no longer needs",
                self.path,
                std::io::Error::last_os_error()
            )));
        }
        if let Some(w) = self.watch.take() {
            crate::os::sigbus::unregister(w);
        }
        self.base = p.cast();
        self.len = len;
        self.watch = crate::os::sigbus::register(p as usize, len);
        Ok(())
    }

    fn unmap(&mut self) {
        if let Some(w) = self.watch.take() {
            crate::os::sigbus::unregister(w);
        }
        if !self.base.is_null() {
            // SAFETY: base/len describe a mapping we made.
            unsafe { libc::munmap(self.base.cast(), self.len) };
            self.base = ptr::null_mut();
            self.len = 0;
        }
    }

    /// Base address of the mapping.
    #[inline(always)]
    pub fn base(&self) -> *mut u8 {
        self.base
    }

    /// Mapped length in bytes.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the file is in memory (tmpfs, `/dev/shm`, a memfd).
    pub fn in_memory(&self) -> bool {
        self.in_memory
    }

    /// Map the pages of `[off, off+len)` (allocated in the file already)
    /// into this process at once, writable: one system call instead of a
    /// page fault per page on first touch. Best effort: a kernel without
    /// `MADV_POPULATE_WRITE` (before Linux 5.14), or a range past the
    /// mapping, leaves the pages to fault in as they are touched.
    pub fn populate(&self, off: u64, len: u64) {
        let inside = off
            .checked_add(len)
            .is_some_and(|end| end <= self.len as u64);
        if len == 0 || !inside || self.kind == Kind::ReadOnly {
            return;
        }
        // page-aligned start (`off` is: regions start on pages)
        // SAFETY: the range is inside our mapping (checked above); the
        // advice only maps pages, it changes no byte.
        unsafe {
            libc::madvise(
                self.base.add(off as usize).cast(),
                len as usize,
                libc::MADV_POPULATE_WRITE,
            )
        };
    }

    /// Return the pages of `[off, off+len)` to the system; they read as zero.
    pub fn punch(&self, off: u64, len: u64) {
        if len == 0 {
            return;
        }
        // SAFETY: fd is open; punching a range of our own file.
        let rc = unsafe {
            libc::fallocate(
                self.fd,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off as i64,
                len as i64,
            )
        };
        let inside = off
            .checked_add(len)
            .is_some_and(|end| end <= self.len as u64);
        if rc != 0 && inside {
            // No hole punching on this filesystem: zero the bytes instead.
            // SAFETY: the range is inside our mapping (checked above).
            unsafe { ptr::write_bytes(self.base.add(off as usize), 0, len as usize) };
        }
    }

    /// fsync the file (after msync: the data is on disk).
    pub fn fsync(&self) -> Result<()> {
        // SAFETY: fd is open.
        if unsafe { libc::fsync(self.fd) } != 0 {
            return Err(Error::os("fsync", &self.path));
        }
        Ok(())
    }

    /// msync the whole mapping.
    pub fn sync(&self) -> Result<()> {
        // SAFETY: base/len describe our mapping.
        if unsafe { libc::msync(self.base.cast(), self.len, libc::MS_SYNC) } != 0 {
            return Err(Error::os("msync", &self.path));
        }
        Ok(())
    }

    /// Give the lock descriptor a new open file description (after `fork`,
    /// so that its kernel locks are no longer shared with the parent).
    pub fn reopen_private(&mut self) -> Result<()> {
        let nfd = reopen(self.fd).map_err(|_| Error::os("reopen", &self.path))?;
        // SAFETY: both fds are ours; dup3 atomically replaces lock_fd.
        let rc = unsafe { libc::dup3(nfd, self.lock_fd, libc::O_CLOEXEC) };
        // SAFETY: nfd is ours.
        unsafe { libc::close(nfd) };
        if rc < 0 {
            return Err(Error::os("dup3", &self.path));
        }
        Ok(())
    }
}

/// Errors that mean "the file system has no room for this": the only
/// failures of a store that the API reports as such (DESIGN.md invariant 11).
fn is_space_errno(e: i32) -> bool {
    matches!(e, libc::ENOSPC | libc::EDQUOT | libc::EFBIG)
}

/// Run `f` (a call that may grow the file) with SIGXFSZ blocked in this
/// thread, and discard the signal if the call raised it: past
/// `RLIMIT_FSIZE` the kernel both fails the call with EFBIG and sends
/// SIGXFSZ, whose default action would kill the process. The process's own
/// disposition of SIGXFSZ is left alone.
fn without_sigxfsz<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: sigset_t is plain data; the sig* calls initialise it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid sigset pointers; blocking a signal in this thread only.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGXFSZ);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
    }
    let saved_errno = |r| (r, errno());
    let (r, e) = saved_errno(f());
    // SAFETY: valid pointers; a zero timeout only collects a pending signal.
    unsafe {
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        if libc::sigismember(&old, libc::SIGXFSZ) == 0
            && libc::sigismember(&pending, libc::SIGXFSZ) == 1
        {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::sigtimedwait(&set, std::ptr::null_mut(), &zero);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        *libc::__errno_location() = e;
    }
    r
}

/// A new open file description of the file behind `fd`.
fn reopen(fd: RawFd) -> std::result::Result<RawFd, ()> {
    let p = format!("/proc/self/fd/{fd}\0");
    // SAFETY: p is NUL-terminated.
    let nfd = unsafe { libc::open(p.as_ptr().cast(), libc::O_RDWR | libc::O_CLOEXEC) };
    if nfd < 0 {
        Err(())
    } else {
        Ok(nfd)
    }
}

/// Is the file behind `fd` in memory (tmpfs or shmem: `/dev/shm`, memfds)?
fn fs_in_memory(fd: RawFd) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: fd is open; `st` is a buffer of the right type.
    if unsafe { libc::fstatfs(fd, st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstatfs filled it.
    let st = unsafe { st.assume_init() };
    st.f_type == libc::TMPFS_MAGIC
}

impl Drop for Region {
    fn drop(&mut self) {
        self.unmap();
        // A descriptor from new_from_fd shares its open file description
        // with the caller's, which keeps OFD locks alive after our close:
        // an open that failed must not leave the creation lock held.
        self.finish_open();
        // SAFETY: the fds are ours; closing releases our OFD locks.
        unsafe {
            if self.lock_fd >= 0 {
                libc::close(self.lock_fd);
            }
            libc::close(self.fd);
        }
    }
}

/// Apply `mode` exactly (umask does not narrow it; memfds start at 0777).
fn fchmod_exact(fd: RawFd, mode: u32, shown: &str) -> Result<()> {
    // SAFETY: fd is ours.
    if unsafe { libc::fchmod(fd, mode as libc::mode_t) } != 0 {
        let e = Error::os("fchmod", shown);
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    Ok(())
}

fn unsafe_pwrite(fd: RawFd, b: &[u8], off: u64) -> isize {
    // SAFETY: b is a valid readable buffer.
    unsafe { libc::pwrite(fd, b.as_ptr().cast(), b.len(), off as i64) }
}

fn flock_for(byte: i64, ty: i16) -> libc::flock {
    // SAFETY: flock is plain data; zero is a valid starting value (l_pid must be 0 for OFD locks).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = ty;
    fl.l_whence = libc::SEEK_SET as i16;
    fl.l_start = byte;
    fl.l_len = 1;
    fl
}

/// Take (`F_WRLCK`) or drop (`F_UNLCK`) an OFD lock on one byte.
/// Returns `Ok(false)` if `wait` is false and another description holds it.
pub fn ofd_lock(fd: RawFd, byte: i64, ty: i16, wait: bool) -> std::result::Result<bool, i32> {
    let mut fl = flock_for(byte, ty);
    let cmd = if wait {
        libc::F_OFD_SETLKW
    } else {
        libc::F_OFD_SETLK
    };
    loop {
        // SAFETY: fl is a valid flock for this command.
        if unsafe { libc::fcntl(fd, cmd, &mut fl) } == 0 {
            return Ok(true);
        }
        match errno() {
            libc::EINTR => continue,
            libc::EAGAIN | libc::EACCES if !wait => return Ok(false),
            e => return Err(e),
        }
    }
}

/// True if an open file description other than `fd`'s holds a lock on `byte`.
pub fn ofd_held_by_other(fd: RawFd, byte: i64) -> bool {
    let mut fl = flock_for(byte, libc::F_WRLCK as i16);
    // SAFETY: fl is a valid flock for F_OFD_GETLK.
    if unsafe { libc::fcntl(fd, libc::F_OFD_GETLK, &mut fl) } != 0 {
        // Cannot tell: assume alive (never take a live holder for dead).
        return true;
    }
    fl.l_type != libc::F_UNLCK as i16
}
