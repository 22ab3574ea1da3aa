//! The failures the fake can put a rollout into, one per reason the deploy step detects.

use std::fmt;

/// A way for a rollout's pods to go wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The container starts, exits 1 and is restarted with back-off.
    CrashLoopBackOff,
    /// The image cannot be pulled; the kubelet backs off.
    ImagePullBackOff,
    /// The first failed pull of an image.
    ErrImagePull,
    /// The container refers to a missing Secret or ConfigMap key.
    CreateContainerConfigError,
    /// The image reference cannot be parsed.
    InvalidImageName,
    /// The container is killed for exceeding its memory limit, again and again.
    OomKilled,
    /// The container runs but its readiness probe never passes.
    Unready,
    /// No node fits the pod; the deployment exceeds its progress deadline.
    Unschedulable,
}

impl Failure {
    pub const ALL: [Failure; 8] = [
        Failure::CrashLoopBackOff,
        Failure::ImagePullBackOff,
        Failure::ErrImagePull,
        Failure::CreateContainerConfigError,
        Failure::InvalidImageName,
        Failure::OomKilled,
        Failure::Unready,
        Failure::Unschedulable,
    ];

    /// The image tag that makes the fake fail a container this way (`web:crashloop`), so a demo
    /// can break and fix a rollout by editing a manifest alone.
    pub fn image_tag(self) -> &'static str {
        match self {
            Failure::CrashLoopBackOff => "crashloop",
            Failure::ImagePullBackOff => "imagepullbackoff",
            Failure::ErrImagePull => "errimagepull",
            Failure::CreateContainerConfigError => "configerror",
            Failure::InvalidImageName => "invalidimagename",
            Failure::OomKilled => "oomkilled",
            Failure::Unready => "unready",
            Failure::Unschedulable => "unschedulable",
        }
    }

    /// The failure an image's tag asks for, if any.
    pub fn from_image(image: &str) -> Option<Failure> {
        let tag = image.rsplit_once(':').map(|(_, tag)| tag)?;
        Failure::ALL.into_iter().find(|f| f.image_tag() == tag)
    }

    /// What the cluster reports: a pod waiting reason, a termination reason or a condition.
    pub fn reason(self) -> &'static str {
        match self {
            Failure::CrashLoopBackOff => "CrashLoopBackOff",
            Failure::ImagePullBackOff => "ImagePullBackOff",
            Failure::ErrImagePull => "ErrImagePull",
            Failure::CreateContainerConfigError => "CreateContainerConfigError",
            Failure::InvalidImageName => "InvalidImageName",
            Failure::OomKilled => "OOMKilled",
            Failure::Unready => "Unready",
            Failure::Unschedulable => "ProgressDeadlineExceeded",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_select_failures() {
        assert_eq!(
            Failure::from_image("registry.local:5000/web:crashloop"),
            Some(Failure::CrashLoopBackOff)
        );
        assert_eq!(Failure::from_image("registry.local:5000/web"), None);
        assert_eq!(Failure::from_image("web:1.2.3"), None);
        for failure in Failure::ALL {
            assert_eq!(
                Failure::from_image(&format!("x:{}", failure.image_tag())),
                Some(failure)
            );
        }
    }
}
