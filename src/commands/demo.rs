//! `agent-orch demo`: the sample workflow against a fake Kubernetes API server started in this
//! process, so the whole loop — gates, deploy with rollout watch, verify, rollback — runs on a
//! laptop with nothing installed.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{ColorChoice, DemoArgs, DemoFailure};
use crate::cluster::fake::{self, FakeOptions};
use crate::error::{Error, ExitStatus};
use crate::session::RunOptions;

/// The namespace the demo deploys to (the workflow names it too).
const NAMESPACE: &str = "fleet-demo";

pub(crate) fn run(
    args: &DemoArgs,
    color_choice: ColorChoice,
    color: bool,
) -> Result<ExitStatus, Error> {
    // The fake cluster gets its own runtime thread: it keeps serving while the run blocks.
    let cluster_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("fake-cluster")
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let cluster = cluster_runtime
        .block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            fake::serve(listener, FakeOptions::default()).await
        })
        .map_err(Error::FakeCluster)?;
    let kubeconfig =
        std::env::temp_dir().join(format!("agent-orch-demo-{}.kubeconfig", std::process::id()));
    cluster
        .write_kubeconfig(&kubeconfig, NAMESPACE)
        .map_err(Error::FakeCluster)?;

    let mut vars = vec![(
        "kubeconfig".to_owned(),
        kubeconfig.to_string_lossy().into_owned(),
    )];
    vars.extend(args.vars.iter().cloned());
    if let Some(failure) = args.break_with {
        vars.push(("image_tag".to_owned(), image_tag(failure).to_owned()));
    }
    // The demo workflow has no environment that asks for approval.
    let options = RunOptions {
        vars,
        artifacts: args.artifacts.clone(),
        echo: !args.quiet,
        ..RunOptions::new(&args.workflow)
    };
    let status = super::run::run_with(&options, color_choice, color);

    drop(cluster);
    cluster_runtime.shutdown_timeout(Duration::from_secs(1));
    remove_quietly(kubeconfig);
    status
}

/// The image tag the fake cluster answers with this failure.
fn image_tag(failure: DemoFailure) -> &'static str {
    let failure = match failure {
        DemoFailure::Crashloop => fake::Failure::CrashLoopBackOff,
        DemoFailure::Imagepullbackoff => fake::Failure::ImagePullBackOff,
        DemoFailure::Errimagepull => fake::Failure::ErrImagePull,
        DemoFailure::Configerror => fake::Failure::CreateContainerConfigError,
        DemoFailure::Invalidimagename => fake::Failure::InvalidImageName,
        DemoFailure::Oomkilled => fake::Failure::OomKilled,
        DemoFailure::Unready => fake::Failure::Unready,
        DemoFailure::Unschedulable => fake::Failure::Unschedulable,
    };
    failure.image_tag()
}

fn remove_quietly(path: PathBuf) {
    // A leftover kubeconfig of a dead local server is harmless; failing the demo for it is not.
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn every_demo_failure_has_a_tag_the_fake_understands() {
        for failure in DemoFailure::value_variants() {
            let tag = image_tag(*failure);
            assert!(
                fake::Failure::from_image(&format!("fleet-sample:{tag}")).is_some(),
                "{failure:?} -> {tag}"
            );
        }
    }
}
