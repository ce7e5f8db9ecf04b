use feed::config::{Command, HELP};

#[tokio::main]
async fn main() {
    match Command::parse_with_env(std::env::args().skip(1), |var| std::env::var(var).ok()) {
        Ok(Command::Help) => print!("{HELP}"),
        Ok(Command::Serve(config)) => {
            if let Err(e) = bgsync_server::serve::init_logging() {
                eprintln!("feed: {e}");
                std::process::exit(2);
            }
            if let Err(e) = feed::serve(config).await {
                eprintln!("feed: {e}");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("feed: {e}");
            std::process::exit(2);
        }
    }
}
