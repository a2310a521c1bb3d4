//! Names of file owners: uid and gid to user and group name through the system's NSS
//! (`getpwuid_r` / `getgrgid_r`), cached for one run.
//!
//! Guarantees: an id without a name gives `None`, never an error; the FFI calls use buffers the
//! calls are told the size of, grown on `ERANGE` up to a fixed bound.

use std::collections::HashMap;
use std::ffi::CStr;

const MAX_BUFFER: usize = 1 << 20;

/// Cached id → name lookups for one run.
#[derive(Debug, Default)]
pub(crate) struct Owners {
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
}

impl Owners {
    pub(crate) fn user(&mut self, uid: u32) -> Option<String> {
        self.users
            .entry(uid)
            .or_insert_with(|| user_name(uid))
            .clone()
    }

    pub(crate) fn group(&mut self, gid: u32) -> Option<String> {
        self.groups
            .entry(gid)
            .or_insert_with(|| group_name(gid))
            .clone()
    }
}

/// Run one `get*_r` lookup, growing its buffer on `ERANGE`. `call` makes the call into the
/// buffer it is given and returns the result code and the name pointer (null for no entry).
fn lookup(mut call: impl FnMut(&mut [u8]) -> (libc::c_int, *const libc::c_char)) -> Option<String> {
    let mut buffer = vec![0u8; 1024];
    loop {
        let (rc, name) = call(&mut buffer);
        if rc == libc::ERANGE && buffer.len() < MAX_BUFFER {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if rc != 0 || name.is_null() {
            return None;
        }
        // SAFETY: on success the name points to a NUL-terminated string inside `buffer`, which
        // is still alive here.
        let name = unsafe { CStr::from_ptr(name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

fn user_name(uid: u32) -> Option<String> {
    lookup(|buffer| {
        // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids); it is only read after
        // getpwuid_r filled it in.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `entry`, `buffer` (with its true length) and `result` are valid for writes for
        // the duration of the call, which stores its strings in `buffer`.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut entry,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                &mut result,
            )
        };
        let name = if result.is_null() {
            std::ptr::null()
        } else {
            entry.pw_name.cast_const()
        };
        (rc, name)
    })
}

fn group_name(gid: u32) -> Option<String> {
    lookup(|buffer| {
        // SAFETY: as in `user_name`, for `group`.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in `user_name`.
        let rc = unsafe {
            libc::getgrgid_r(
                gid,
                &mut entry,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                &mut result,
            )
        };
        let name = if result.is_null() {
            std::ptr::null()
        } else {
            entry.gr_name.cast_const()
        };
        (rc, name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_a_name_and_an_unused_id_has_none() {
        let mut owners = Owners::default();
        assert_eq!(owners.user(0).as_deref(), Some("root"));
        assert_eq!(owners.group(0).as_deref(), Some("root"));
        assert_eq!(owners.user(3_999_999_999), None);
    }
}
