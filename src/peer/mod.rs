//! Clients of the switchboard: signaling, the peer connection, the voice loop, and the
//! headless peers (`sapa caller`, `sapa agent`, `sapa history`) built from them.
//!
//! The headless peers are the contract external checks use: their flags and their JSON output
//! lines are documented in `docs/protocol.md` and `--help`, and tests drive real calls with them.

pub mod agent;
pub mod caller;
pub mod impair;
pub mod rtc;
pub mod signal;
pub mod supervisor;
pub mod voice;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::protocol::{ClientMessage, ServerMessage};

/// Errors of a headless peer run. Each prints as one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(transparent)]
    Signal(#[from] signal::SignalError),
    #[error(transparent)]
    Rtc(#[from] rtc::RtcError),
    #[error("audio codec: {0}")]
    Codec(#[from] opus::Error),
    #[error(transparent)]
    Wav(#[from] crate::wav::WavError),
    #[error(transparent)]
    Device(#[from] crate::audio::device::DeviceError),
    #[error("{0}")]
    Protocol(String),
}

/// Generous limit for one request/answer round trip.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The local address to gather ICE candidates on: loopback for a switchboard on this machine
/// (so tests never touch another interface), every interface otherwise.
pub fn bind_ip_for(ws_url: &str) -> IpAddr {
    let host = ws_url
        .split("://")
        .nth(1)
        .unwrap_or(ws_url)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    if host == "localhost" || host.starts_with("127.") || host == "[::1]" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

/// Opens the peer connection and negotiates it with the switchboard (one offer/answer round
/// trip, all candidates in the offer), then waits until ICE/DTLS are up.
pub async fn connect_media(
    signal: &signal::Signal,
    ws_url: &str,
) -> Result<(rtc::PeerMedia, mpsc::Receiver<rtc::RxPacket>), PeerError> {
    let (media, packets) = rtc::PeerMedia::new(bind_ip_for(ws_url)).await?;
    let offer = media.create_offer().await?;
    let answer = signal
        .request(
            ClientMessage::MediaOffer {
                req: None,
                sdp: offer,
            },
            REQUEST_TIMEOUT,
        )
        .await?;
    let ServerMessage::MediaAnswer { sdp, .. } = answer else {
        return Err(PeerError::Protocol(format!(
            "expected media_answer, got {answer:?}"
        )));
    };
    media.accept_answer(sdp).await?;
    media.connected(Duration::from_secs(10)).await?;
    Ok((media, packets))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_switchboard_binds_loopback() {
        assert_eq!(
            bind_ip_for("ws://127.0.0.1:9/v1/ws"),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            bind_ip_for("ws://localhost:9"),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            bind_ip_for("ws://10.1.2.3:9"),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
    }
}
