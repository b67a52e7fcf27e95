//! The client's one peer connection (the `webrtc` crate): two audio m-lines, `main` (send and
//! receive) and `aux` (receive only, for a supervisor's whisper or a conference's third voice).
//!
//! The phone opens it once at login and keeps it for the shift; a caller opens it per call.
//! Received RTP goes out on a channel tagged with its slot; Opus frames to send go in through
//! [`PeerMedia::send_opus`], which builds RTP with our own sequence numbers and timestamps so
//! the send clock is exact.
//!
//! Voice goes out as RFC 2198 RED (`audio/red`, payload type [`RED_PT`], each packet also
//! carrying the two frames before it; `audio::red`) when the answer accepts it, plain Opus
//! otherwise; received RED is split into its frames by `peer::voice`.
//!
//! DTMF travels as RFC 4733 telephone events (`telephone-event/48000`, payload type
//! [`TELEPHONE_EVENT_PT`]) negotiated next to Opus on `main`: [`PeerMedia::send_telephone_event`]
//! sends them on the voice's SSRC, sequence numbers and clock; received ones arrive on the same
//! channel as audio, told apart by their payload type.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_TELEPHONE_EVENT,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription,
    Registry,
};

/// Payload type we offer for Opus.
pub const OPUS_PT: u8 = 111;
/// Payload type we offer for RFC 4733 telephone events (DTMF) at 48 kHz.
pub const TELEPHONE_EVENT_PT: u8 = 101;
pub use crate::audio::red::RED_PT;

/// Which of the two incoming streams a packet came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxSlot {
    Main = 0,
    Aux = 1,
}

/// One received RTP packet.
#[derive(Debug, Clone)]
pub struct RxPacket {
    pub slot: RxSlot,
    pub seq: u16,
    pub timestamp: u32,
    /// [`OPUS_PT`] for voice, [`TELEPHONE_EVENT_PT`] for DTMF (the answer may map others).
    pub payload_type: u8,
    pub payload: Bytes,
    pub arrived: Instant,
}

/// Errors of the client peer connection.
#[derive(Debug, thiserror::Error)]
pub enum RtcError {
    #[error("WebRTC: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    #[error("ICE gathering did not finish within {0:?}")]
    GatherTimeout(Duration),
    #[error("the peer connection failed: {0}")]
    Failed(String),
}

/// Connection state as the rest of the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    New,
    Connected,
    Failed,
}

#[derive(Clone)]
struct Handler {
    gathered: watch::Sender<bool>,
    link: watch::Sender<LinkState>,
    packets: mpsc::Sender<RxPacket>,
    /// SSRCs the switchboard announced for each slot, from its SDP answer.
    ssrcs: watch::Receiver<[Option<u32>; 2]>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let link = match state {
            RTCPeerConnectionState::Connected => LinkState::Connected,
            RTCPeerConnectionState::Failed
            | RTCPeerConnectionState::Closed
            | RTCPeerConnectionState::Disconnected => LinkState::Failed,
            _ => return,
        };
        let _ = self.link.send(link);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let packets = self.packets.clone();
        let mut ssrcs = self.ssrcs.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                    if matches!(event, TrackRemoteEvent::OnEnded) {
                        break;
                    }
                    continue;
                };
                let announced = *ssrcs.borrow_and_update();
                let ssrc = packet.header.ssrc;
                let slot = if announced[1] == Some(ssrc) {
                    RxSlot::Aux
                } else {
                    RxSlot::Main
                };
                let rx = RxPacket {
                    slot,
                    seq: packet.header.sequence_number,
                    timestamp: packet.header.timestamp,
                    payload_type: packet.header.payload_type,
                    payload: packet.payload.clone(),
                    arrived: Instant::now(),
                };
                // Never block the WebRTC driver: a full channel drops the packet, which the
                // jitter buffer treats as loss.
                if packets.try_send(rx).is_err() && packets.is_closed() {
                    break;
                }
            }
        });
    }
}

/// The client's peer connection and its send state. Cheap to clone (one shared connection).
#[derive(Clone)]
pub struct PeerMedia {
    inner: Arc<Inner>,
}

struct Inner {
    pc: Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    seq: AtomicU16,
    /// Extra RTP time added on top of the caller's frame clock (kept for restarts).
    ts_base: AtomicU32,
    link: watch::Receiver<LinkState>,
    gathered: watch::Receiver<bool>,
    ssrcs: watch::Sender<[Option<u32>; 2]>,
    /// The answer accepted RED: voice goes out wrapped (`audio::red`).
    red: AtomicBool,
}

fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// RFC 4733 events on the Opus clock, keys 0-9, *, #, A-D (events 0-15).
fn telephone_event_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_TELEPHONE_EVENT.to_owned(),
        clock_rate: crate::audio::rfc4733::CLOCK_HZ,
        channels: 0,
        sdp_fmtp_line: "0-15".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// RFC 2198 redundancy over our Opus payload type, as browsers offer it.
fn red_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/red".to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: format!("{OPUS_PT}/{OPUS_PT}"),
        rtcp_feedback: vec![],
    }
}

/// The codecs of both m-lines, in order of preference.
fn audio_codecs() -> [RTCRtpCodecParameters; 3] {
    [
        RTCRtpCodecParameters {
            rtp_codec: opus_codec(),
            payload_type: OPUS_PT,
        },
        RTCRtpCodecParameters {
            rtp_codec: red_codec(),
            payload_type: RED_PT,
        },
        RTCRtpCodecParameters {
            rtp_codec: telephone_event_codec(),
            payload_type: TELEPHONE_EVENT_PT,
        },
    ]
}

impl PeerMedia {
    /// Creates the peer connection with its two m-lines. `bind_ip` is the local address to
    /// gather on (loopback when the switchboard is on this machine).
    pub async fn new(
        bind_ip: std::net::IpAddr,
    ) -> Result<(PeerMedia, mpsc::Receiver<RxPacket>), RtcError> {
        let mut media_engine = MediaEngine::default();
        for codec in audio_codecs() {
            media_engine.register_codec(codec, RtpCodecKind::Audio)?;
        }
        // Sender and receiver reports only: the receiver reports carry the loss that sets the
        // encoder's FEC. The default set adds NACK (negotiated for video only, yet its two
        // interceptors look at every packet) and transport-wide congestion control feedback,
        // for a bandwidth estimate that a fixed-rate voice stream has no use for.
        let registry = configure_rtcp_reports(Registry::new());
        let (gathered_tx, gathered) = watch::channel(false);
        let (link_tx, link) = watch::channel(LinkState::New);
        let (packets_tx, packets) = mpsc::channel(1024);
        let (ssrcs, ssrcs_rx) = watch::channel([None, None]);
        let handler = Handler {
            gathered: gathered_tx,
            link: link_tx,
            packets: packets_tx,
            ssrcs: ssrcs_rx,
        };
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(handler))
            .with_udp_addrs(vec![format!("{bind_ip}:0")])
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let ssrc = rand::random::<u32>();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            "sapa".to_owned(),
            "sapa-voice".to_owned(),
            "voice".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: opus_codec(),
                ..Default::default()
            }],
        )));
        pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
        // A track's transceiver offers only the track's codec; telephone events must be
        // negotiated on the same m-line (same SSRC and clock), so both are preferred here.
        if let Some(main) = pc.get_transceivers().await.first() {
            main.set_codec_preferences(audio_codecs().to_vec()).await?;
        }
        pc.add_transceiver_from_kind(
            RtpCodecKind::Audio,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                streams: vec![],
                send_encodings: vec![],
            }),
        )
        .await?;
        Ok((
            PeerMedia {
                inner: Arc::new(Inner {
                    pc,
                    track,
                    ssrc,
                    seq: AtomicU16::new(rand::random()),
                    ts_base: AtomicU32::new(rand::random()),
                    link,
                    gathered,
                    ssrcs,
                    red: AtomicBool::new(false),
                }),
            },
            packets,
        ))
    }

    /// Creates the offer with all candidates gathered (no trickle: one round trip).
    pub async fn create_offer(&self) -> Result<String, RtcError> {
        let offer = self.inner.pc.create_offer(None).await?;
        self.inner.pc.set_local_description(offer).await?;
        let mut gathered = self.inner.gathered.clone();
        let limit = Duration::from_secs(5);
        tokio::time::timeout(limit, gathered.wait_for(|g| *g))
            .await
            .map_err(|_| RtcError::GatherTimeout(limit))?
            .map_err(|_| RtcError::Failed("gathering stopped".into()))?;
        let local = self
            .inner
            .pc
            .local_description()
            .await
            .ok_or_else(|| RtcError::Failed("no local description".into()))?;
        Ok(local.sdp)
    }

    /// Applies the switchboard's answer.
    pub async fn accept_answer(&self, sdp: String) -> Result<(), RtcError> {
        let _ = self.inner.ssrcs.send(answer_ssrcs(&sdp));
        self.inner
            .red
            .store(answer_accepts_red(&sdp), Ordering::Relaxed);
        let answer = RTCSessionDescription::answer(sdp)?;
        self.inner.pc.set_remote_description(answer).await?;
        Ok(())
    }

    /// Waits until ICE and DTLS are up.
    pub async fn connected(&self, limit: Duration) -> Result<(), RtcError> {
        let mut link = self.inner.link.clone();
        let state = tokio::time::timeout(limit, link.wait_for(|s| *s != LinkState::New))
            .await
            .map_err(|_| RtcError::Failed(format!("not connected within {limit:?}")))?
            .map_err(|_| RtcError::Failed("connection dropped".into()))?;
        match *state {
            LinkState::Connected => Ok(()),
            _ => Err(RtcError::Failed("ICE/DTLS failed".into())),
        }
    }

    /// Whether voice goes out as RED (the answer accepted it).
    pub fn sends_red(&self) -> bool {
        self.inner.red.load(Ordering::Relaxed)
    }

    pub fn link_state(&self) -> LinkState {
        *self.inner.link.borrow()
    }

    /// Sends one Opus frame with RTP time `timestamp` (48 kHz clock of the sender's frames).
    pub async fn send_opus(&self, timestamp: u32, payload: Bytes) -> Result<(), RtcError> {
        let seq = self.reserve_seq();
        self.send_opus_with_seq(seq, timestamp, payload).await
    }

    /// Takes the next RTP sequence number (a lost packet in an impairment test uses one up).
    pub fn reserve_seq(&self) -> u16 {
        self.inner.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// A second handle to the same connection.
    pub fn clone_handle(&self) -> PeerMedia {
        self.clone()
    }

    pub async fn send_opus_with_seq(
        &self,
        seq: u16,
        timestamp: u32,
        payload: Bytes,
    ) -> Result<(), RtcError> {
        self.send_voice_with_seq(seq, timestamp, OPUS_PT, payload)
            .await
    }

    /// Sends one voice payload (Opus, or RED around Opus) with a sequence number taken before.
    pub async fn send_voice_with_seq(
        &self,
        seq: u16,
        timestamp: u32,
        payload_type: u8,
        payload: Bytes,
    ) -> Result<(), RtcError> {
        let inner = &self.inner;
        let packet = rtc::rtp::packet::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                payload_type,
                sequence_number: seq,
                timestamp: timestamp.wrapping_add(inner.ts_base.load(Ordering::Relaxed)),
                ssrc: inner.ssrc,
                ..Default::default()
            },
            payload,
        };
        inner.track.write_rtp(packet).await?;
        Ok(())
    }

    /// Sends one RFC 4733 packet on the voice stream. `packet.timestamp` is on the same clock
    /// as the `timestamp` given to [`Self::send_opus`] (the event's start frame).
    pub async fn send_telephone_event(
        &self,
        packet: crate::audio::rfc4733::TelephonePacket,
    ) -> Result<(), RtcError> {
        let inner = &self.inner;
        let rtp = rtc::rtp::packet::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                marker: packet.marker,
                payload_type: TELEPHONE_EVENT_PT,
                sequence_number: self.reserve_seq(),
                timestamp: packet
                    .timestamp
                    .wrapping_add(inner.ts_base.load(Ordering::Relaxed)),
                ssrc: inner.ssrc,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(&packet.payload),
        };
        inner.track.write_rtp(rtp).await?;
        Ok(())
    }

    pub async fn close(&self) {
        let _ = self.inner.pc.close().await;
    }
}

/// The SSRC the answer announces on each m-line (main, aux), in m-line order.
fn answer_ssrcs(sdp: &str) -> [Option<u32>; 2] {
    let mut out = [None, None];
    let mut index: Option<usize> = None;
    for line in sdp.lines() {
        if line.starts_with("m=") {
            index = Some(index.map_or(0, |i| i + 1));
        } else if let Some(rest) = line.strip_prefix("a=ssrc:")
            && let (Some(i), Some(ssrc)) = (index, rest.split_whitespace().next())
            && i < 2
            && out[i].is_none()
        {
            out[i] = ssrc.parse().ok();
        }
    }
    out
}

/// Whether the answer's first (voice) m-line kept RED at our payload type.
fn answer_accepts_red(sdp: &str) -> bool {
    let want = format!("a=rtpmap:{RED_PT} red/48000");
    sdp.split("m=")
        .nth(1)
        .is_some_and(|first| first.lines().any(|l| l.starts_with(&want)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_counts_only_when_the_answer_keeps_it_on_the_voice_line() {
        let with = "v=0\r\nm=audio 9 UDP 111 63\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:63 red/48000/2\r\nm=audio 9 UDP 111\r\n";
        assert!(answer_accepts_red(with));
        let without = "v=0\r\nm=audio 9 UDP 111\r\na=rtpmap:111 opus/48000/2\r\nm=audio 9 UDP 111 63\r\na=rtpmap:63 red/48000/2\r\n";
        assert!(!answer_accepts_red(without));
    }

    #[test]
    fn reads_ssrcs_per_m_line() {
        let sdp = "v=0\r\nm=audio 9 UDP 111\r\na=ssrc:11 cname:x\r\na=ssrc:11 msid:a b\r\nm=audio 9 UDP 111\r\na=ssrc:22 cname:y\r\n";
        assert_eq!(answer_ssrcs(sdp), [Some(11), Some(22)]);
    }
}
