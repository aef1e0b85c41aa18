//! What the deployed ServiceAccounts may do, asked of the real API server with `kubectl auth can-i`: the
//! operator can do its job (its CRs cluster-wide, consumer scaling, Jobs, Events, its Lease) and cannot read
//! Secrets, run pods, change Deployments or write cluster-wide objects; the API and consumers can do nothing.
//! The RBAC under test is what dev/platform/up applied from deploy/overlays/dev.

mod deploy_support;

use deploy_support::{NAMESPACE, can_i, require_deployed_rbac};

const OPERATOR: &str = "streamlake-operator";

#[test]
fn operator_service_account_can_do_what_it_needs() {
    require_deployed_rbac();
    let needs: &[(&str, &str, &str)] = &[
        // (verb, resource, namespace: "*" = all namespaces)
        ("list", "replays.streamlake.io", "*"),
        ("watch", "replays.streamlake.io", "*"),
        ("list", "backfills.streamlake.io", "*"),
        ("watch", "dlqinspections.streamlake.io", "*"),
        ("watch", "dqchecks.streamlake.io", "*"),
        ("patch", "replays.streamlake.io", NAMESPACE),
        // A Backfill in mode Replay creates its (owned) Replay.
        ("create", "replays.streamlake.io", NAMESPACE),
        ("patch", "replays.streamlake.io --subresource=status", NAMESPACE),
        ("patch", "backfills.streamlake.io --subresource=status", NAMESPACE),
        (
            "patch",
            "dlqinspections.streamlake.io --subresource=status",
            NAMESPACE,
        ),
        ("patch", "dqchecks.streamlake.io --subresource=status", NAMESPACE),
        ("list", "deployments.apps", NAMESPACE),
        ("get", "deployments.apps --subresource=scale", NAMESPACE),
        ("patch", "deployments.apps --subresource=scale", NAMESPACE),
        ("patch", "horizontalpodautoscalers.autoscaling", NAMESPACE),
        ("create", "jobs.batch", NAMESPACE),
        ("delete", "jobs.batch", NAMESPACE),
        ("watch", "jobs.batch", NAMESPACE),
        ("create", "events.events.k8s.io", NAMESPACE),
        ("create", "leases.coordination.k8s.io", NAMESPACE),
        (
            "update",
            "leases.coordination.k8s.io/streamlake-operator",
            NAMESPACE,
        ),
        ("get", "leases.coordination.k8s.io/streamlake-operator", NAMESPACE),
    ];
    let denied: Vec<String> = needs
        .iter()
        .filter(|(verb, resource, ns)| !can_i(OPERATOR, verb, resource, ns))
        .map(|(verb, resource, ns)| format!("{verb} {resource} in {ns}"))
        .collect();
    assert!(
        denied.is_empty(),
        "the operator's ServiceAccount is missing: {denied:#?}"
    );
}

#[test]
fn operator_service_account_cannot_read_secrets_or_write_cluster_wide() {
    require_deployed_rbac();
    let forbidden: &[(&str, &str, &str)] = &[
        ("get", "secrets", NAMESPACE),
        ("list", "secrets", "*"),
        ("watch", "secrets", "kube-system"),
        ("create", "pods", NAMESPACE),
        ("delete", "pods", NAMESPACE),
        ("create", "pods --subresource=exec", NAMESPACE),
        ("create", "deployments.apps", NAMESPACE),
        ("update", "deployments.apps", NAMESPACE),
        ("patch", "deployments.apps", NAMESPACE),
        ("delete", "deployments.apps", NAMESPACE),
        ("delete", "replays.streamlake.io", NAMESPACE),
        ("update", "configmaps", NAMESPACE),
        ("create", "serviceaccounts --subresource=token", NAMESPACE),
        (
            "delete",
            "leases.coordination.k8s.io/streamlake-operator",
            NAMESPACE,
        ),
        (
            "update",
            "leases.coordination.k8s.io/kube-scheduler",
            "kube-system",
        ),
        ("create", "leases.coordination.k8s.io", "kube-system"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io", "-"),
        ("patch", "customresourcedefinitions.apiextensions.k8s.io", "-"),
        ("create", "clusterroles.rbac.authorization.k8s.io", "-"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io", "-"),
        ("create", "rolebindings.rbac.authorization.k8s.io", NAMESPACE),
        ("escalate", "roles.rbac.authorization.k8s.io", NAMESPACE),
        ("create", "namespaces", "-"),
        ("delete", "namespaces", "-"),
        ("patch", "nodes", "-"),
        ("impersonate", "serviceaccounts", NAMESPACE),
        (
            "create",
            "validatingwebhookconfigurations.admissionregistration.k8s.io",
            "-",
        ),
    ];
    let allowed: Vec<String> = forbidden
        .iter()
        .filter(|(verb, resource, ns)| can_i(OPERATOR, verb, resource, ns))
        .map(|(verb, resource, ns)| format!("{verb} {resource} in {ns}"))
        .collect();
    assert!(
        allowed.is_empty(),
        "the operator's ServiceAccount may do more than it needs: {allowed:#?}"
    );
}

#[test]
fn workload_service_accounts_have_no_kubernetes_api_access() {
    require_deployed_rbac();
    for account in ["streamlake-ingest-api", "streamlake-consumer"] {
        for (verb, resource) in [
            ("get", "secrets"),
            ("list", "pods"),
            ("get", "configmaps"),
            ("list", "replays.streamlake.io"),
            ("get", "deployments.apps"),
        ] {
            assert!(
                !can_i(account, verb, resource, NAMESPACE),
                "{account} may {verb} {resource}"
            );
        }
    }
}
