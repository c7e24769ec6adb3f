//! `studyspot-mail-sink`: the local stack's SMTP server (what `up` runs; `studyspot mail-sink`
//! is the same with flags). It listens where the notifications consumer's e-mail channel points
//! (`STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__HOST`/`__PORT`, default 127.0.0.1:2525), writes
//! each message to `STUDYSPOT_MAIL_DIR` (default `$STUDYSPOT_HOME/mail`) as an `.eml` file, and
//! serves `/ready` on `STUDYSPOT_OPS_LISTEN` (default 127.0.0.1:9105).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _traces = studyspot_telemetry::init_logs("mail-sink", "text");
    let ops = std::env::var("STUDYSPOT_OPS_LISTEN").unwrap_or_else(|_| "127.0.0.1:9105".into());
    let Ok(ops) = ops.parse() else {
        eprintln!("STUDYSPOT_OPS_LISTEN={ops} is not an address");
        return std::process::ExitCode::FAILURE;
    };
    let shutdown = match studyspot_telemetry::shutdown_token() {
        Ok(token) => token,
        Err(e) => {
            eprintln!("cannot handle signals: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let stopped = async move { shutdown.cancelled().await };
    let dir = studyspot_mail_sink::default_dir();
    match studyspot_mail_sink::run(&studyspot_mail_sink::default_listen(), &dir, ops, stopped).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mail sink: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
