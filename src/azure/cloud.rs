//! [`AzureCloud`]: which Azure cloud a service connection lives in, and what that changes:
//! the Entra ID authority the credentials sign in at, the Key Vault domain a bare vault
//! name expands to, and the Resource Manager endpoint.

use std::sync::Arc;

use azure_core::cloud::CloudConfiguration;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AzureCloud {
    #[default]
    Public,
    UsGovernment,
    China,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "Azure cloud `{0}` is not supported (expected `AzureCloud`, `AzureUSGovernment` or `AzureChinaCloud`)"
)]
pub struct UnsupportedCloud(pub String);

impl AzureCloud {
    /// The cloud a service connection names in its `environment` data (`AzureCloud`,
    /// `AzureUSGovernment`, `AzureChinaCloud`); unnamed is the public cloud.
    pub fn from_connection(name: Option<&str>) -> Result<Self, UnsupportedCloud> {
        match name {
            None => Ok(Self::Public),
            Some(name) if name.eq_ignore_ascii_case("AzureCloud") => Ok(Self::Public),
            Some(name) if name.eq_ignore_ascii_case("AzureUSGovernment") => Ok(Self::UsGovernment),
            Some(name) if name.eq_ignore_ascii_case("AzureChinaCloud") => Ok(Self::China),
            Some(other) => Err(UnsupportedCloud(other.to_owned())),
        }
    }

    /// The domain under which this cloud's vaults live: `<name>.<domain>`.
    pub fn vault_domain(self) -> &'static str {
        match self {
            Self::Public => "vault.azure.net",
            Self::UsGovernment => "vault.usgovcloudapi.net",
            Self::China => "vault.azure.cn",
        }
    }

    /// The Resource Manager endpoint, also the audience of its tokens (the endpoints of each
    /// cloud as the Azure SDKs list them, e.g. azure-sdk-for-js `getArmEndpoint`).
    pub fn resource_manager(self) -> &'static str {
        match self {
            Self::Public => "https://management.azure.com",
            Self::UsGovernment => "https://management.usgovcloudapi.net",
            Self::China => "https://management.chinacloudapi.cn",
        }
    }

    /// The SDK's configuration of this cloud, for client options.
    pub(crate) fn sdk_configuration(self) -> Arc<CloudConfiguration> {
        Arc::new(match self {
            Self::Public => CloudConfiguration::AzurePublic,
            Self::UsGovernment => CloudConfiguration::AzureGovernment,
            Self::China => CloudConfiguration::AzureChina,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_cloud_names() {
        assert_eq!(AzureCloud::from_connection(None), Ok(AzureCloud::Public));
        assert_eq!(
            AzureCloud::from_connection(Some("AzureUSGovernment")).map(AzureCloud::vault_domain),
            Ok("vault.usgovcloudapi.net")
        );
        assert_eq!(
            AzureCloud::from_connection(Some("azurechinacloud")),
            Ok(AzureCloud::China)
        );
        assert_eq!(
            AzureCloud::from_connection(Some("AzureStack")),
            Err(UnsupportedCloud("AzureStack".into()))
        );
    }
}
