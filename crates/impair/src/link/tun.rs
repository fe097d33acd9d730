//! A TUN device: the kernel hands the holder of the file every IP packet routed
//! to the device, and takes every packet written to it as if it had arrived on a
//! wire (issue #14: "a TUN device in each" namespace).
//!
//! Opened with `IFF_VNET_HDR`, every packet read or written is preceded by a
//! virtio-net header, and the device offers the kernel checksum, TCP and UDP
//! segmentation offload: reads may hold TCP super-packets and UDP trains,
//! which the link cuts into real packets itself ([`super::offload`]). The device lives as long as
//! the file: a crashed run leaves no device behind.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// The `struct ifreq` of `<net/if.h>` as TUNSETIFF reads and writes it: the
/// name, then a 24-byte union of which TUNSETIFF uses the leading `short` flags.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    pad: [u8; 22],
}

/// Opens a new TUN device named after `pattern` (a `%d` in it lets the kernel
/// pick a free number) and returns its file, nonblocking, and its name.
pub(crate) fn open(pattern: &str) -> io::Result<(File, String)> {
    let bytes = pattern.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("device name {pattern:?} is longer than 15 bytes"),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short,
        pad: [0; 22],
    };
    req.name[..bytes.len()].copy_from_slice(bytes);
    let rc = set_iff(&file, &mut req);
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let end = req
        .name
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(req.name.len());
    let name = String::from_utf8_lossy(&req.name[..end]).into_owned();
    let offloads = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;
    // UDP segmentation offload (Linux 6.2 on): trains of datagrams sent
    // with UDP_SEGMENT come through whole, the link cuts them. An older
    // kernel refuses the bits; it then cuts them itself before the device.
    let uso = libc::TUN_F_USO4 | libc::TUN_F_USO6;
    if set_offload(&file, offloads | uso) < 0 && set_offload(&file, offloads) < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((file, name))
}

#[allow(unsafe_code)]
fn set_offload(file: &File, flags: libc::c_uint) -> libc::c_int {
    // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned int of
    // TUN_F_* bits), not a pointer, so no memory of ours is read or written;
    // the descriptor is a valid /dev/net/tun attached to a device by
    // TUNSETIFF, borrowed from `file` for the call.
    unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            libc::TUNSETOFFLOAD,
            libc::c_ulong::from(flags),
        )
    }
}

#[allow(unsafe_code)]
fn set_iff(file: &File, req: &mut IfReq) -> libc::c_int {
    // SAFETY: TUNSETIFF takes a pointer to a `struct ifreq` (40 bytes on Linux:
    // a 16-byte name and a 24-byte union), reads the name and flags from it and
    // writes the chosen name back within its first 16 bytes. `IfReq` is
    // `repr(C)` with exactly that size and layout (16 + 2 + 22 bytes, alignment
    // 2), lives on our stack for the whole call and is borrowed mutably, so the
    // kernel reads and writes only memory we own and nothing else aliases it.
    // The descriptor is a valid open /dev/net/tun borrowed from `file`.
    unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, std::ptr::from_mut(req)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_has_the_kernel_size() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
        assert_eq!(std::mem::offset_of!(IfReq, flags), 16);
    }

    #[test]
    fn long_names_are_refused_before_the_kernel_sees_them() {
        let e = open("a-name-longer-than-15").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
