//! The device cgroup on cgroup v2: an eBPF program of type `BPF_PROG_TYPE_CGROUP_DEVICE`
//! attached to the container's v2 group, the way runc and crun filter devices there (cgroup
//! v2 has no `devices` controller; the kernel asks the programs attached to the process's
//! group and its ancestors on every open and `mknod` of a device node).
//!
//! The program is made here from the same [`DeviceRule`]s the v1 `devices.allow` lines
//! come from, so both filters allow exactly the same: the access is allowed when one rule
//! matches its type (`c`/`b`, or `a` for any), major, minor (`None` for any) and every
//! access asked for (read, write, mknod) is in the rule's; otherwise it is denied (`EPERM`).
//! It is loaded and attached with the raw `bpf(2)` system call (no C library): the program
//! is a dozen instructions per rule, encoded by hand below. It is attached with
//! `BPF_F_ALLOW_MULTI`, so programs a host manager attached to ancestor groups (systemd)
//! still apply too, and stays attached for the life of the group: removing the group at the
//! container's end frees it.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::spec::DeviceRule;

/// Why the filter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceFilterError {
    #[error("the kernel refused the device filter program (bpf BPF_PROG_LOAD): {source}{log}")]
    Load {
        source: std::io::Error,
        /// The verifier's log, when it said something.
        log: String,
    },
    #[error("failed to attach the device filter to {} (bpf BPF_PROG_ATTACH)", path.display())]
    Attach {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DeviceFilterError {
    /// The kernel does not let us (rootless: `bpf(2)` needs `CAP_SYS_ADMIN` for this
    /// program type): the container then runs without the filter, as without a v1 group.
    pub(crate) fn is_denied(&self) -> bool {
        let source = match self {
            DeviceFilterError::Load { source, .. } | DeviceFilterError::Attach { source, .. } => {
                source
            }
        };
        matches!(source.raw_os_error(), Some(libc::EPERM | libc::EACCES))
    }
}

// The kernel's numbers (include/uapi/linux/bpf.h).
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// `struct bpf_cgroup_dev_ctx`: `access_type` is (access << 16) | type.
const CTX_ACCESS_TYPE: i16 = 0;
const CTX_MAJOR: i16 = 4;
const CTX_MINOR: i16 = 8;
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// One eBPF instruction (`struct bpf_insn`): opcode, destination and source registers,
/// offset, immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    code: u8,
    dst: u8,
    src: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    /// The 8 bytes the kernel reads (registers: destination in the low nibble).
    fn encode(self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[0] = self.code;
        out[1] = (self.src << 4) | (self.dst & 0x0f);
        out[2..4].copy_from_slice(&self.off.to_le_bytes());
        out[4..8].copy_from_slice(&self.imm.to_le_bytes());
        out
    }
}

// Opcodes: class | operation | source.
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_W | BPF_MEM: dst = *(u32 *)(src + off)
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const MOV32_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K: if dst != imm, skip `off` instructions
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT: return r0

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

/// The access bits of a rule's `rwm` letters (every access for an `a` rule, as v1 reads
/// `a`).
fn access_bits(rule: &DeviceRule) -> i32 {
    if rule.kind == 'a' {
        return ACC_MKNOD | ACC_READ | ACC_WRITE;
    }
    rule.access.chars().fold(0, |bits, c| {
        bits | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        }
    })
}

/// The program for `rules` (see the module docs). Registers: r1 the context, then r2 the
/// device type, r3 the access asked for, r4 the major, r5 the minor; r1 is scratch after
/// the loads; r0 the verdict (1 allow, 0 deny).
pub(crate) fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut prog = vec![
        insn(LDX_W, 2, 1, CTX_ACCESS_TYPE, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, CTX_ACCESS_TYPE, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, CTX_MAJOR, 0),
        insn(LDX_W, 5, 1, CTX_MINOR, 0),
    ];
    for rule in rules {
        // Each test jumps past the rest of this rule's block when it does not match (the
        // offsets are set once the block's length is known).
        let jump_unless = |reg: u8, value: i32| insn(JNE_K, reg, 0, 0, value);
        let mut block = Vec::new();
        match rule.kind {
            'c' => block.push(jump_unless(2, DEV_CHAR)),
            'b' => block.push(jump_unless(2, DEV_BLOCK)),
            _ => {}
        }
        let allowed = access_bits(rule);
        if allowed != ACC_MKNOD | ACC_READ | ACC_WRITE {
            // r1 = asked & !allowed; anything left is an access the rule does not give.
            block.push(insn(MOV32_X, 1, 3, 0, 0));
            block.push(insn(AND32_K, 1, 0, 0, !allowed));
            block.push(jump_unless(1, 0));
        }
        for (reg, number) in [(4, rule.major), (5, rule.minor)] {
            if let Some(n) = number {
                // Majors have 12 bits, minors 20: always a positive i32.
                block.push(jump_unless(reg, n as i32));
            }
        }
        block.extend([insn(MOV64_K, 0, 0, 0, 1), insn(EXIT, 0, 0, 0, 0)]);
        let len = block.len();
        prog.extend(block.into_iter().enumerate().map(|(at, mut i)| {
            if i.code == JNE_K {
                i.off = (len - at - 1) as i16;
            }
            i
        }));
    }
    prog.extend([insn(MOV64_K, 0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0)]);
    prog
}

/// `union bpf_attr` for `BPF_PROG_LOAD`, up to the fields used (the kernel takes a shorter
/// union and reads the rest as zero).
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

/// `union bpf_attr` for `BPF_PROG_ATTACH`.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// Loads the program for `rules` and attaches it to the cgroup v2 group at `group`.
pub(crate) fn attach(group: &Path, rules: &[DeviceRule]) -> Result<(), DeviceFilterError> {
    let prog = load(&program(rules))?;
    let dir = File::open(group).map_err(|source| DeviceFilterError::Attach {
        path: group.to_path_buf(),
        source,
    })?;
    let attr = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    // SAFETY: `attr` is BPF_PROG_ATTACH's union (no pointers); both descriptors stay open
    // across the call.
    unsafe { bpf(BPF_PROG_ATTACH, &attr) }.map_err(|source| DeviceFilterError::Attach {
        path: group.to_path_buf(),
        source,
    })?;
    // The attachment holds the program; our descriptor goes.
    Ok(())
}

/// The `bpf(2)` call `cmd` with `attr`; its non-negative result.
///
/// # Safety
///
/// `attr` must be the #[repr(C)] layout of `union bpf_attr` for `cmd`, and every pointer in
/// it valid for what the kernel does with it during the call.
unsafe fn bpf<T>(cmd: libc::c_int, attr: &T) -> std::io::Result<i64> {
    // SAFETY: the kernel reads `size_of::<T>()` bytes of the live `attr`; its pointers are
    // the caller's promise.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

/// Loads `prog` as a cgroup device program; its descriptor.
fn load(prog: &[Insn]) -> Result<OwnedFd, DeviceFilterError> {
    let bytes: Vec<u8> = prog.iter().flat_map(|i| i.encode()).collect();
    let license = CString::new("Apache-2.0").expect("no NUL");
    let mut log = vec![0u8; 4096];
    let load_with = |log_level: u32, log: &mut [u8]| {
        let attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: prog.len() as u32,
            insns: bytes.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level,
            log_size: if log_level > 0 { log.len() as u32 } else { 0 },
            log_buf: if log_level > 0 {
                log.as_mut_ptr() as u64
            } else {
                0
            },
            kern_version: 0,
            prog_flags: 0,
        };
        // SAFETY: `attr` is BPF_PROG_LOAD's union; the instructions and the license it
        // points to live across the call, and the kernel writes at most `log_size` bytes
        // into `log`, which is that long.
        let fd = unsafe { bpf(BPF_PROG_LOAD, &attr) }?;
        // SAFETY: a successful BPF_PROG_LOAD returns a new descriptor nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    };
    load_with(0, &mut log).or_else(|source| {
        // Once more with the verifier's log, to say why.
        if let Ok(fd) = load_with(1, &mut log) {
            return Ok(fd);
        }
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
        Err(DeviceFilterError::Load {
            source,
            log: if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            },
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: char, major: Option<u64>, minor: Option<u64>, access: &str) -> DeviceRule {
        DeviceRule {
            kind,
            major,
            minor,
            access: access.to_string(),
        }
    }

    /// Runs `prog` on one device access the way the kernel would (the few opcodes the
    /// program uses): the verdict.
    fn verdict(prog: &[Insn], kind: i32, access: i32, major: i32, minor: i32) -> i64 {
        let ctx = [((access << 16) | kind) as u32, major as u32, minor as u32];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (d, s) = (i.dst as usize, i.src as usize);
            pc += 1;
            match i.code {
                LDX_W => r[d] = ctx[i.off as usize / 4] as i64,
                AND32_K => r[d] = ((r[d] as u32) & (i.imm as u32)) as i64,
                RSH32_K => r[d] = ((r[d] as u32) >> i.imm) as i64,
                MOV32_X => r[d] = (r[s] as u32) as i64,
                MOV64_K => r[d] = i.imm as i64,
                JNE_K if r[d] != i.imm as i64 => pc += i.off as usize,
                JNE_K => {}
                EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn the_program_allows_what_the_v1_rules_allow() {
        let prog = program(&DeviceRule::defaults());
        let (c, b) = (DEV_CHAR, DEV_BLOCK);
        let (r, w, m) = (ACC_READ, ACC_WRITE, ACC_MKNOD);
        assert_eq!(verdict(&prog, c, r | w, 1, 3), 1, "/dev/null");
        assert_eq!(verdict(&prog, c, r, 136, 7), 1, "a pty");
        assert_eq!(verdict(&prog, c, m, 4, 1), 1, "mknod of any char node");
        assert_eq!(verdict(&prog, b, m, 8, 0), 1, "mknod of any block node");
        assert_eq!(verdict(&prog, c, r, 4, 1), 0, "a tty not listed");
        assert_eq!(verdict(&prog, b, r, 8, 0), 0, "a disk");
        assert_eq!(
            verdict(&prog, b, r, 1, 3),
            0,
            "a block node with /dev/null's numbers"
        );
        let only_read = program(&[rule('c', Some(10), Some(229), "r")]);
        assert_eq!(verdict(&only_read, c, r, 10, 229), 1);
        assert_eq!(verdict(&only_read, c, r | w, 10, 229), 0);
        assert_eq!(verdict(&only_read, c, r, 10, 228), 0);
        assert_eq!(
            verdict(&program(&[]), c, r, 1, 3),
            0,
            "no rules: all denied"
        );
        let all = program(&[rule('a', None, None, "")]);
        assert_eq!(verdict(&all, b, r | w | m, 8, 0), 1);
    }

    #[test]
    fn instructions_encode_as_the_kernel_reads_them() {
        assert_eq!(
            insn(LDX_W, 2, 1, 4, 0).encode(),
            [0x61, 0x12, 4, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            insn(JNE_K, 4, 0, 3, 136).encode(),
            [0x55, 0x04, 3, 0, 136, 0, 0, 0]
        );
        assert_eq!(
            insn(AND32_K, 1, 0, 0, !ACC_READ).encode(),
            [0x54, 0x01, 0, 0, 0xfd, 0xff, 0xff, 0xff]
        );
    }
}
