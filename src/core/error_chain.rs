//! Errors as one line: a message and its causes, for places with no room for a `Caused by:`
//! list.

/// An error and all its causes on one line, `message: cause: cause`, for step messages and
/// reports where there is no room for a `Caused by:` list.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    chain(error, |_, _| true)
}

/// Like [`error_chain`], leaving out causes whose text the line already holds (clients such as
/// hyper and the Azure SDK repeat their source in their own message).
pub fn distinct_error_chain(error: &dyn std::error::Error) -> String {
    chain(error, |text, cause| !text.contains(cause))
}

fn chain(error: &dyn std::error::Error, keep: impl Fn(&str, &str) -> bool) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if keep(&text, &cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Layer {
        message: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layers(messages: &[&'static str]) -> Layer {
        messages
            .iter()
            .rev()
            .fold(None, |source, message| {
                Some(Layer {
                    message,
                    source: source.map(Box::new),
                })
            })
            .expect("at least one layer")
    }

    #[test]
    fn chains_join_every_cause_or_only_the_new_ones() {
        let error = layers(&[
            "request failed: connection refused",
            "connection refused",
            "os error 111",
        ]);
        assert_eq!(
            error_chain(&error),
            "request failed: connection refused: connection refused: os error 111"
        );
        assert_eq!(
            distinct_error_chain(&error),
            "request failed: connection refused: os error 111"
        );
    }
}
