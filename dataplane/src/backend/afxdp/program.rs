//! Loading, attaching and detaching tarte's XDP program (redirect.bpf.c).
//!
//! One program per interface, shared by the sockets of all its queues in
//! this process: the first socket loads and attaches it, the last one to go
//! detaches it (also on unwinding, since it is a `Drop`). Attaching uses
//! `XDP_FLAGS_UPDATE_IF_NOEXIST` so we never replace someone else's program,
//! and detaching names our program (`XDP_FLAGS_REPLACE`) so we never remove
//! someone else's either.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, Weak};

use libbpf_sys as bpf;

use crate::backend::{BackendError, XdpMode};

/// The compiled program (build.rs: clang -target bpf).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/redirect.bpf.o"));

/// Programs attached by this process, by interface.
static ATTACHED: Mutex<Vec<(String, Weak<XdpProgram>)>> = Mutex::new(Vec::new());

/// An attached XDP program and its maps.
#[derive(Debug)]
pub(crate) struct XdpProgram {
    obj: *mut bpf::bpf_object,
    prog_fd: RawFd,
    xsks_fd: RawFd,
    ifindex: i32,
    flags: u32,
    port: u16,
    iface: String,
    mode: XdpMode,
}

// SAFETY: after loading, the object is only touched again by Drop (close);
// everything else goes through map/program file descriptors, which the
// kernel lets any thread use.
unsafe impl Send for XdpProgram {}
// SAFETY: as above: no method mutates the libbpf object.
unsafe impl Sync for XdpProgram {}

fn xdp_err(iface: &str, queue: u32, reason: String) -> BackendError {
    BackendError::Xdp {
        iface: iface.into(),
        queue,
        reason,
    }
}

unsafe extern "C" fn quiet(
    _level: bpf::libbpf_print_level,
    _fmt: *const libc::c_char,
    _ap: *mut bpf::__va_list_tag,
) -> libc::c_int {
    0
}

impl XdpProgram {
    /// The program attached to `iface` for UDP port `port`, attaching it if
    /// this process has not yet.
    pub(crate) fn attach_shared(
        iface: &str,
        mode: XdpMode,
        port: u16,
    ) -> Result<Arc<XdpProgram>, BackendError> {
        let mut reg = ATTACHED.lock().unwrap_or_else(|p| p.into_inner());
        reg.retain(|(_, w)| w.strong_count() > 0);
        if let Some(p) = reg
            .iter()
            .find(|(i, _)| i == iface)
            .and_then(|(_, w)| w.upgrade())
        {
            if p.port != port || p.mode != mode {
                return Err(xdp_err(
                    iface,
                    0,
                    format!(
                        "already attached here for port {} in {:?} mode, not {port} {mode:?}",
                        p.port, p.mode
                    ),
                ));
            }
            return Ok(p);
        }
        let p = Arc::new(Self::load_and_attach(iface, mode, port)?);
        reg.push((iface.to_string(), Arc::downgrade(&p)));
        Ok(p)
    }

    fn load_and_attach(iface: &str, mode: XdpMode, port: u16) -> Result<XdpProgram, BackendError> {
        let cname = CString::new(iface).map_err(|_| xdp_err(iface, 0, "bad name".into()))?;
        // SAFETY: cname is a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(BackendError::Interface {
                iface: iface.into(),
                reason: format!("not found: {}", std::io::Error::last_os_error()),
            });
        }
        if std::env::var_os("TARTE_LIBBPF_LOG").is_none() {
            // SAFETY: installs a callback with the signature libbpf expects;
            // it ignores its arguments, so libbpf stays silent.
            unsafe { bpf::libbpf_set_print(Some(quiet)) };
        }
        // SAFETY: OBJECT is a static ELF image that outlives the object
        // (libbpf copies what it needs); null opts means defaults.
        let obj = unsafe {
            bpf::bpf_object__open_mem(OBJECT.as_ptr().cast(), OBJECT.len() as _, std::ptr::null())
        };
        if obj.is_null() {
            return Err(xdp_err(
                iface,
                0,
                format!("opening BPF object: {}", std::io::Error::last_os_error()),
            ));
        }
        // From here on `prog` owns obj, so every early return closes it.
        let mut prog = XdpProgram {
            obj,
            prog_fd: -1,
            xsks_fd: -1,
            ifindex,
            flags: 0,
            port,
            iface: iface.into(),
            mode,
        };
        // SAFETY: obj is a valid, opened, not yet loaded object.
        let rc = unsafe { bpf::bpf_object__load(obj) };
        if rc != 0 {
            return Err(xdp_err(
                iface,
                0,
                format!(
                    "loading BPF object: {}",
                    std::io::Error::from_raw_os_error(-rc)
                ),
            ));
        }
        let name = |s: &str| CString::new(s).unwrap_or_default();
        // SAFETY: obj is loaded; the names are valid C strings.
        let (p, xsks_fd, cfg_fd) = unsafe {
            (
                bpf::bpf_object__find_program_by_name(obj, name("tarte_xdp").as_ptr()),
                bpf::bpf_object__find_map_fd_by_name(obj, name("tarte_xsks").as_ptr()),
                bpf::bpf_object__find_map_fd_by_name(obj, name("tarte_cfg").as_ptr()),
            )
        };
        if p.is_null() || xsks_fd < 0 || cfg_fd < 0 {
            return Err(xdp_err(
                iface,
                0,
                "program or maps missing from BPF object".into(),
            ));
        }
        // SAFETY: p is a program of the loaded object.
        prog.prog_fd = unsafe { bpf::bpf_program__fd(p) };
        prog.xsks_fd = xsks_fd;
        let key: u32 = 0;
        // The program compares against the raw (network order) port field.
        let value: u32 = port.to_be() as u32;
        // SAFETY: key and value are u32s matching the map's definition.
        let rc = unsafe {
            bpf::bpf_map_update_elem(
                cfg_fd,
                (&key as *const u32).cast(),
                (&value as *const u32).cast(),
                0,
            )
        };
        if rc != 0 {
            return Err(xdp_err(
                iface,
                0,
                format!("setting port: {}", std::io::Error::from_raw_os_error(-rc)),
            ));
        }
        let mode_flag = match mode {
            XdpMode::Skb => bpf::XDP_FLAGS_SKB_MODE,
            XdpMode::Drv => bpf::XDP_FLAGS_DRV_MODE,
        };
        // SAFETY: valid ifindex and program fd; null opts.
        let rc = unsafe {
            bpf::bpf_xdp_attach(
                ifindex,
                prog.prog_fd,
                mode_flag | bpf::XDP_FLAGS_UPDATE_IF_NOEXIST,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            let e = std::io::Error::from_raw_os_error(-rc);
            let hint = if -rc == libc::EBUSY || -rc == libc::EEXIST {
                " (another XDP program is attached: `ip link set dev IF xdp off` if it is stale)"
            } else {
                ""
            };
            return Err(xdp_err(
                iface,
                0,
                format!("attaching XDP program in {mode:?} mode: {e}{hint}"),
            ));
        }
        prog.flags = mode_flag;
        tracing::debug!(iface, ?mode, port, "xdp program attached");
        Ok(prog)
    }

    /// Points queue `queue`'s map entry at AF_XDP socket `fd`.
    pub(crate) fn register(&self, queue: u32, fd: RawFd) -> Result<(), BackendError> {
        // SAFETY: key and value are u32/i32 as the XSKMAP expects.
        let rc = unsafe {
            bpf::bpf_map_update_elem(
                self.xsks_fd,
                (&queue as *const u32).cast(),
                (&fd as *const RawFd).cast(),
                0,
            )
        };
        if rc != 0 {
            return Err(xdp_err(
                &self.iface,
                queue,
                format!(
                    "adding socket to XSKMAP: {}",
                    std::io::Error::from_raw_os_error(-rc)
                ),
            ));
        }
        Ok(())
    }

    /// Removes queue `queue`'s socket from the map (socket going away).
    pub(crate) fn unregister(&self, queue: u32) {
        // SAFETY: key is a u32 as the map expects.
        unsafe { bpf::bpf_map_delete_elem(self.xsks_fd, (&queue as *const u32).cast()) };
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        if self.flags != 0 {
            let opts = bpf::bpf_xdp_attach_opts {
                sz: size_of::<bpf::bpf_xdp_attach_opts>() as _,
                old_prog_fd: self.prog_fd,
                ..Default::default()
            };
            // SAFETY: valid ifindex; opts names our program so that only it
            // is detached.
            let rc = unsafe {
                bpf::bpf_xdp_detach(self.ifindex, self.flags | bpf::XDP_FLAGS_REPLACE, &opts)
            };
            if rc != 0 {
                tracing::warn!(iface = %self.iface, error = %std::io::Error::from_raw_os_error(-rc), "detaching XDP program failed");
            } else {
                tracing::debug!(iface = %self.iface, "xdp program detached");
            }
        }
        // SAFETY: obj came from bpf_object__open_mem and is closed once.
        unsafe { bpf::bpf_object__close(self.obj) };
    }
}
