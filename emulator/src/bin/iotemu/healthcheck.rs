//! `iotemu healthcheck`: exit 0 when the emulator on this machine answers 200 on the control
//! port's `/health`, for container HEALTHCHECKs.

use std::process::ExitCode;
use std::time::Duration;

/// `GET /health` on the loopback control port, 3 s at most.
pub(crate) async fn healthcheck(control_port: u16) -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", control_port))
            .await
            .ok()?;
        tcp.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        tcp.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.1 200"))
    };
    match tokio::time::timeout(Duration::from_secs(3), probe).await {
        Ok(Some(true)) => {
            println!("healthy");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("iotemu: not healthy (no 200 from http://127.0.0.1:{control_port}/health)");
            ExitCode::FAILURE
        }
    }
}
