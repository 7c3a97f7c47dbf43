//! `iotemu certs …`: the file-writing face of [`crate::certs`], mirroring the steps of the
//! C SDK's `certGen.sh` (`create_root_and_intermediate`, `create_device_certificate`,
//! `create_verification_certificate`) with files named so a quickstart reads naturally:
//! `root-ca.pem`, `NAME.pem`, `ID-full-chain.pem` + `ID.key.pem`.
//!
//! Nothing is overwritten without `--force`: an uploaded, verified CA whose key is replaced by
//! a re-run can no longer sign devices, and nothing tells the user why.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{CA_DAYS, CertError, DEFAULT_ROOT_NAME, DEVICE_DAYS, GeneratedCert};

/// Make test X.509 certificates (ECDSA P-256) for DPS and IoT Hub X.509 attestation.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a self-signed root CA: DIR/root-ca.pem, DIR/root-ca.key.pem.
    Root {
        /// Directory to write to (created if missing).
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
        /// Subject common name of the root CA.
        #[arg(long, default_value = DEFAULT_ROOT_NAME)]
        name: String,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = CA_DAYS)]
        days: u32,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Create an intermediate CA signed by --ca: NAME.pem, NAME.key.pem, NAME-full-chain.pem.
    ///
    /// NAME-full-chain.pem is the intermediate followed by the chain in the --ca file; pass it
    /// as --ca to sign devices whose full chain must reach the root.
    Intermediate {
        #[command(flatten)]
        issuer: IssuerArgs,
        /// Subject common name of the CA, also the stem of the file names.
        #[arg(long)]
        name: String,
        /// How many CAs may follow this one (0: it signs device certificates only).
        #[arg(long, default_value_t = 0)]
        path_len: u8,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = CA_DAYS)]
        days: u32,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Create a device certificate signed by --ca: ID.pem, ID.key.pem, ID-full-chain.pem.
    ///
    /// The subject CN is the registration id, as DPS requires. ID-full-chain.pem (the leaf
    /// followed by the chain in the --ca file) is the certificate file the device loads, with
    /// ID.key.pem as its key, e.g. Python `X509(cert_file=…, key_file=…)`.
    Device {
        #[command(flatten)]
        issuer: IssuerArgs,
        /// DPS registration id (= IoT Hub device id); becomes the certificate's CN.
        #[arg(long, value_name = "ID")]
        registration_id: String,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = DEVICE_DAYS)]
        days: u32,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Create a TLS server certificate signed by --ca: NAME.pem, NAME.key.pem, NAME-full-chain.pem.
    ///
    /// For a service the SDKs reach next to the emulator, e.g. Azurite serving HTTPS for file
    /// uploads (docs/file-upload.md): clients that trust the root trust it. Every --name (DNS
    /// name or IP address) goes into the subject alternative names; the first is the CN and
    /// the file stem.
    Server {
        #[command(flatten)]
        issuer: IssuerArgs,
        /// DNS name or IP address the server is reached at (repeat for several).
        #[arg(long = "name", value_name = "NAME", required = true)]
        names: Vec<String>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = DEVICE_DAYS)]
        days: u32,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Create a self-signed device certificate: ID.pem, ID.key.pem.
    ///
    /// The subject CN is the registration id. For individual enrollments and hub devices
    /// authenticated by thumbprint; both thumbprints are printed.
    SelfSigned {
        /// DPS registration id (= IoT Hub device id); becomes the certificate's CN.
        #[arg(long, value_name = "ID")]
        registration_id: String,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = DEVICE_DAYS)]
        days: u32,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Create the proof-of-possession certificate for a CA verification code.
    ///
    /// Its subject CN is the verification code shown for the uploaded CA, and it is signed by
    /// the CA's key. Upload it to turn the CA into a verified one.
    Verification {
        #[command(flatten)]
        issuer: IssuerArgs,
        /// The verification code generated for the uploaded CA certificate.
        #[arg(long)]
        code: String,
        /// File to write the verification certificate to.
        #[arg(long, value_name = "FILE", default_value = "verification.pem")]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Upload a CA certificate to a running emulator and prove possession of its key.
    ///
    /// The whole round trip through the emulator's control port: uploads --ca as NAME unless
    /// it is there already, gets a verification code, signs a certificate whose CN is the
    /// code with --ca-key, and verifies. Exits 0 once the emulator reports NAME verified
    /// (also when it was verified already). The CA key may be certGen.sh's, converted to
    /// unencrypted PKCS#8 (`openssl pkcs8 -topk8 -nocrypt`).
    Verify {
        #[command(flatten)]
        issuer: IssuerArgs,
        /// The emulator's control port, e.g. http://127.0.0.1:9180 (its banner prints it).
        #[arg(long, value_name = "URL", env = "IOTEMU_CONTROL_URL")]
        emulator: String,
        /// Name of the certificate in DPS (or the hub), as enrollment groups' caReferences name it.
        #[arg(long)]
        name: String,
        /// Verify it in this hub (its host name) instead of the DPS instance.
        #[arg(long, value_name = "HOST")]
        hub: Option<String>,
        /// The control port's token, when it requires one.
        #[arg(long, env = "IOTEMU_CONTROL_TOKEN", hide_env_values = true)]
        control_token: Option<String>,
    },
    /// Print the SHA-1 and SHA-256 thumbprints of a certificate.
    ///
    /// Reads the first certificate in FILE (PEM or DER) and prints upper-case hex, as Azure
    /// shows thumbprints.
    Thumbprint {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// The CA that signs: its certificate (or full chain) and its key.
#[derive(Debug, Args)]
pub struct IssuerArgs {
    /// Certificate of the signing CA, PEM; may be a full chain with the CA first.
    #[arg(long, value_name = "CA.pem", visible_alias = "ca-cert")]
    pub ca: PathBuf,
    /// Private key of the signing CA: unencrypted PKCS#8 PEM (BEGIN PRIVATE KEY).
    #[arg(long, value_name = "CA.key.pem")]
    pub ca_key: PathBuf,
}

/// Where the files go.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Directory to write to (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out_dir: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// Runs one `iotemu certs` command and returns what to print: the files written and
/// thumbprints, or the verification's result.
pub async fn run(command: &CertsCommand) -> Result<String, CertError> {
    let mut report = String::new();
    match command {
        CertsCommand::Root {
            out_dir,
            name,
            days,
            force,
        } => root(out_dir, name, *days, *force, &mut report)?,
        CertsCommand::Intermediate {
            issuer,
            name,
            path_len,
            days,
            output,
        } => intermediate(issuer, name, *path_len, *days, output, &mut report)?,
        CertsCommand::Device {
            issuer,
            registration_id,
            days,
            output,
        } => device(issuer, registration_id, *days, output, &mut report)?,
        CertsCommand::Server {
            issuer,
            names,
            days,
            output,
        } => server(issuer, names, *days, output, &mut report)?,
        CertsCommand::SelfSigned {
            registration_id,
            days,
            output,
        } => self_signed(registration_id, *days, output, &mut report)?,
        CertsCommand::Verification {
            issuer,
            code,
            out,
            force,
        } => verification(issuer, code, out, *force, &mut report)?,
        CertsCommand::Verify {
            issuer,
            emulator,
            name,
            hub,
            control_token,
        } => {
            let target = super::EmulatorTarget {
                url: emulator.clone(),
                token: control_token.clone(),
                hub: hub.clone(),
            };
            verify(issuer, &target, name, &mut report).await?
        }
        CertsCommand::Thumbprint { file } => thumbprint(file, &mut report)?,
    }
    Ok(report)
}

/// `iotemu certs root`: DIR/root-ca.pem and DIR/root-ca.key.pem.
fn root(
    out_dir: &Path,
    name: &str,
    days: u32,
    force: bool,
    report: &mut String,
) -> Result<(), CertError> {
    let root = super::root_ca(name, days)?;
    let files = [
        OutFile::cert(out_dir.join("root-ca.pem"), &root.cert_pem),
        OutFile::key(out_dir.join("root-ca.key.pem"), &root.key_pem),
    ];
    write_files(Some(out_dir), &files, force, report)?;
    thumbprint_lines(&root, false, report);
    Ok(())
}

/// `iotemu certs intermediate`: NAME.pem, NAME.key.pem and NAME-full-chain.pem.
fn intermediate(
    issuer: &IssuerArgs,
    name: &str,
    path_len: u8,
    days: u32,
    output: &OutputArgs,
    report: &mut String,
) -> Result<(), CertError> {
    check_file_stem("CA name", name)?;
    let ca = issuer.load()?;
    let cert = super::issue_intermediate(&ca, name, days, path_len)?;
    let files = [
        OutFile::cert(output.out_dir.join(format!("{name}.pem")), &cert.cert_pem),
        OutFile::key(
            output.out_dir.join(format!("{name}.key.pem")),
            &cert.key_pem,
        ),
        OutFile::cert(
            output.out_dir.join(format!("{name}-full-chain.pem")),
            &cert.full_chain_pem,
        ),
    ];
    write_files(Some(&output.out_dir), &files, output.force, report)?;
    thumbprint_lines(&cert, false, report);
    Ok(())
}

/// `iotemu certs device`: a leaf issued by the CA, with its full chain for the device to load.
fn device(
    issuer: &IssuerArgs,
    registration_id: &str,
    days: u32,
    output: &OutputArgs,
    report: &mut String,
) -> Result<(), CertError> {
    // Checked before loading the CA so a typo in the id is the error reported.
    super::validate_registration_id(registration_id)?;
    let ca = issuer.load()?;
    let cert = super::issue_device(&ca, registration_id, days)?;
    let chain_path = output
        .out_dir
        .join(format!("{registration_id}-full-chain.pem"));
    let key_path = output.out_dir.join(format!("{registration_id}.key.pem"));
    let files = [
        OutFile::cert(
            output.out_dir.join(format!("{registration_id}.pem")),
            &cert.cert_pem,
        ),
        OutFile::key(key_path.clone(), &cert.key_pem),
        OutFile::cert(chain_path.clone(), &cert.full_chain_pem),
    ];
    write_files(Some(&output.out_dir), &files, output.force, report)?;
    thumbprint_lines(&cert, false, report);
    let _ = writeln!(
        report,
        "device loads: certificate {}, key {}",
        chain_path.display(),
        key_path.display()
    );
    Ok(())
}

/// `iotemu certs server`: a TLS server certificate issued by the CA, with its full chain.
fn server(
    issuer: &IssuerArgs,
    names: &[String],
    days: u32,
    output: &OutputArgs,
    report: &mut String,
) -> Result<(), CertError> {
    let stem = names.first().map(String::as_str).unwrap_or_default();
    check_file_stem("server name", stem)?;
    let ca = issuer.load()?;
    let cert = super::issue_server(&ca, names, days)?;
    let files = [
        OutFile::cert(output.out_dir.join(format!("{stem}.pem")), &cert.cert_pem),
        OutFile::key(
            output.out_dir.join(format!("{stem}.key.pem")),
            &cert.key_pem,
        ),
        OutFile::cert(
            output.out_dir.join(format!("{stem}-full-chain.pem")),
            &cert.full_chain_pem,
        ),
    ];
    write_files(Some(&output.out_dir), &files, output.force, report)?;
    thumbprint_lines(&cert, false, report);
    Ok(())
}

/// `iotemu certs self-signed`: a device certificate for thumbprint authentication.
fn self_signed(
    registration_id: &str,
    days: u32,
    output: &OutputArgs,
    report: &mut String,
) -> Result<(), CertError> {
    let cert = super::self_signed_device(registration_id, days)?;
    let cert_path = output.out_dir.join(format!("{registration_id}.pem"));
    let key_path = output.out_dir.join(format!("{registration_id}.key.pem"));
    let files = [
        OutFile::cert(cert_path.clone(), &cert.cert_pem),
        OutFile::key(key_path.clone(), &cert.key_pem),
    ];
    write_files(Some(&output.out_dir), &files, output.force, report)?;
    // Thumbprint enrollments and hub selfSigned devices take either hash.
    thumbprint_lines(&cert, true, report);
    let _ = writeln!(
        report,
        "device loads: certificate {}, key {}",
        cert_path.display(),
        key_path.display()
    );
    Ok(())
}

/// `iotemu certs verification`: the proof-of-possession certificate for a verification code.
fn verification(
    issuer: &IssuerArgs,
    code: &str,
    out: &Path,
    force: bool,
    report: &mut String,
) -> Result<(), CertError> {
    let ca = issuer.load()?;
    let cert = super::verification_certificate(&ca, code)?;
    let files = [OutFile::cert(out.to_path_buf(), &cert.cert_pem)];
    write_files(out.parent(), &files, force, report)?;
    let _ = writeln!(
        report,
        "upload {} to verify the CA '{}' (POST …/certificates/NAME/verify, or the portal); \
         `iotemu certs verify --emulator URL` does the whole round trip",
        out.display(),
        ca.common_name()
    );
    Ok(())
}

/// `iotemu certs verify`: the proof-of-possession round trip against a running emulator.
async fn verify(
    issuer: &IssuerArgs,
    target: &super::EmulatorTarget,
    name: &str,
    report: &mut String,
) -> Result<(), CertError> {
    let ca = issuer.load()?;
    let outcome = super::verify_with_emulator(target, name, &ca).await?;
    let place = match &target.hub {
        Some(hub) => format!("hub {hub}"),
        None => "DPS".to_owned(),
    };
    if outcome.uploaded {
        let _ = writeln!(
            report,
            "uploaded '{}' to {place} as '{name}'",
            ca.common_name()
        );
    }
    match &outcome.verification_code {
        Some(code) => {
            let _ = writeln!(report, "proved possession with verification code {code}");
            let _ = writeln!(report, "verified '{name}' in {place}");
        }
        None => {
            let _ = writeln!(report, "'{name}' in {place} was already verified");
        }
    }
    let _ = writeln!(report, "SHA-256 thumbprint: {}", outcome.sha256_thumbprint);
    Ok(())
}

/// `iotemu certs thumbprint`: the SHA-1 and SHA-256 thumbprints of a certificate file.
fn thumbprint(file: &Path, report: &mut String) -> Result<(), CertError> {
    let bytes = std::fs::read(file).map_err(|error| CertError::Io {
        path: file.to_path_buf(),
        error,
    })?;
    let der = super::pem::first_certificate(&bytes, &file.display().to_string())?;
    let (sha1, sha256) = super::thumbprints(&der);
    let _ = writeln!(report, "SHA-1:   {sha1}");
    let _ = writeln!(report, "SHA-256: {sha256}");
    Ok(())
}

impl IssuerArgs {
    fn load(&self) -> Result<super::Ca, CertError> {
        super::Ca::from_files(&self.ca, &self.ca_key)
    }
}

struct OutFile<'a> {
    path: PathBuf,
    contents: &'a str,
    /// Private keys are written owner-only.
    secret: bool,
}

impl<'a> OutFile<'a> {
    fn cert(path: PathBuf, contents: &'a str) -> Self {
        OutFile {
            path,
            contents,
            secret: false,
        }
    }

    fn key(path: PathBuf, contents: &'a str) -> Self {
        OutFile {
            path,
            contents,
            secret: true,
        }
    }
}

/// Writes all files or, if one exists and `force` is off, none: a half-replaced set (new key,
/// old certificate) would be worse than either.
fn write_files(
    dir: Option<&Path>,
    files: &[OutFile<'_>],
    force: bool,
    report: &mut String,
) -> Result<(), CertError> {
    if !force && let Some(existing) = files.iter().find(|f| f.path.exists()) {
        return Err(CertError::Exists(existing.path.clone()));
    }
    if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|error| CertError::Io {
            path: dir.to_owned(),
            error,
        })?;
    }
    for file in files {
        let io = |error| CertError::Io {
            path: file.path.clone(),
            error,
        };
        if file.secret {
            write_secret(&file.path, file.contents).map_err(io)?;
        } else {
            std::fs::write(&file.path, file.contents).map_err(io)?;
        }
        let _ = writeln!(report, "wrote {}", file.path.display());
    }
    Ok(())
}

#[cfg(unix)]
fn write_secret(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` only applies when the file is created; a key overwritten with --force must not
    // keep a looser mode it had before.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_secret(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

fn thumbprint_lines(cert: &GeneratedCert, with_sha1: bool, report: &mut String) {
    let (sha1, sha256) = cert.thumbprints();
    let _ = writeln!(report, "SHA-256 thumbprint: {sha256}");
    if with_sha1 {
        let _ = writeln!(report, "SHA-1 thumbprint:   {sha1}");
    }
}

/// A CA name is also a file name here: keep it inside the output directory.
fn check_file_stem(what: &'static str, name: &str) -> Result<(), CertError> {
    if name.contains(['/', '\\', '\0']) || name.starts_with('.') {
        return Err(CertError::InvalidArgument {
            what,
            value: name.escape_default().to_string(),
            reason: "it names the output files, so it cannot contain / or \\ or start with '.'"
                .into(),
        });
    }
    Ok(())
}
