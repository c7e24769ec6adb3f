//! Attendance: venues, bookings, who is where. Pure decisions in [`decide`], the shell in
//! [`handler`], the time-carrying commands in [`scheduler`].

pub mod decide;
pub mod handler;
pub mod scheduler;

pub use handler::AttendanceHandler;

pub const NAME: &str = "attendance";
pub const DEFAULT_OPS_PORT: u16 = 9103;

/// The QR keys of the settings (`attendance.qr`).
pub fn keys(
    settings: &studyspot_config::Settings,
) -> Result<studyspot_qr_tokens::Keys, studyspot_qr_tokens::TokenError> {
    use secrecy::ExposeSecret;
    let qr = &settings.attendance.qr;
    studyspot_qr_tokens::Keys::new(
        &qr.signing_key_id,
        qr.keys.iter().map(|(id, secret)| (id.clone(), secret.expose_secret().as_bytes().to_vec())),
    )
}
