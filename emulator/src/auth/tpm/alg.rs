//! The TPM 2.0 algorithm identifiers (`TPM_ALG_ID`, Part 2 §6.3) and object attribute bits
//! (`TPMA_OBJECT`, Part 2 §8.3) this module reads or writes.

pub const RSA: u16 = 0x0001;
pub const SHA1: u16 = 0x0004;
pub const HMAC: u16 = 0x0005;
pub const AES: u16 = 0x0006;
pub const KEYEDHASH: u16 = 0x0008;
pub const XOR: u16 = 0x000A;
pub const SHA256: u16 = 0x000B;
pub const SHA384: u16 = 0x000C;
pub const SHA512: u16 = 0x000D;
pub const NULL: u16 = 0x0010;
pub const RSASSA: u16 = 0x0014;
pub const RSAES: u16 = 0x0015;
pub const RSAPSS: u16 = 0x0016;
pub const OAEP: u16 = 0x0017;
pub const ECC: u16 = 0x0023;
pub const SYMCIPHER: u16 = 0x0025;
pub const CFB: u16 = 0x0043;

/// `TPMA_OBJECT` bits.
pub mod attr {
    pub const FIXED_TPM: u32 = 1 << 1;
    pub const FIXED_PARENT: u32 = 1 << 4;
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    pub const USER_WITH_AUTH: u32 = 1 << 6;
    pub const ADMIN_WITH_POLICY: u32 = 1 << 7;
    pub const NO_DA: u32 = 1 << 10;
    pub const RESTRICTED: u32 = 1 << 16;
    pub const DECRYPT: u32 = 1 << 17;
    pub const SIGN: u32 = 1 << 18;
}
