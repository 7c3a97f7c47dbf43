//! The TPM 2.0 algorithm identifiers (`TPM_ALG_ID`, Part 2 §6.3) and object attribute bits
//! (`TPMA_OBJECT`, Part 2 §8.3) this module reads or writes.

pub(crate) const RSA: u16 = 0x0001;
pub(crate) const HMAC: u16 = 0x0005;
pub(crate) const AES: u16 = 0x0006;
pub(crate) const KEYEDHASH: u16 = 0x0008;
pub(crate) const XOR: u16 = 0x000A;
pub(crate) const SHA256: u16 = 0x000B;
pub(crate) const NULL: u16 = 0x0010;
pub(crate) const RSASSA: u16 = 0x0014;
pub(crate) const RSAES: u16 = 0x0015;
pub(crate) const RSAPSS: u16 = 0x0016;
pub(crate) const OAEP: u16 = 0x0017;
// Only the tests build an ECC key (to see it refused).
#[cfg(test)]
pub(crate) const ECC: u16 = 0x0023;
pub(crate) const CFB: u16 = 0x0043;

/// `TPMA_OBJECT` bits.
pub(crate) mod attr {
    pub(crate) const FIXED_TPM: u32 = 1 << 1;
    pub(crate) const FIXED_PARENT: u32 = 1 << 4;
    pub(crate) const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    pub(crate) const USER_WITH_AUTH: u32 = 1 << 6;
    pub(crate) const ADMIN_WITH_POLICY: u32 = 1 << 7;
    pub(crate) const NO_DA: u32 = 1 << 10;
    pub(crate) const RESTRICTED: u32 = 1 << 16;
    pub(crate) const DECRYPT: u32 = 1 << 17;
    pub(crate) const SIGN: u32 = 1 << 18;
}
