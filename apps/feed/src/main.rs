#[tokio::main]
async fn main() {
    // Help, version and usage errors: clap prints them and exits (0, or 2).
    let config = feed::config::Config::try_from_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    if let Err(e) = bgsync_server::serve::init_logging() {
        eprintln!("feed: {e}");
        std::process::exit(2);
    }
    if let Err(e) = feed::serve(config).await {
        eprintln!("feed: {e}");
        std::process::exit(1);
    }
}
