//! Autoscalers targeting a consumer Deployment: a real HPA, and a KEDA ScaledObject. KEDA itself is not
//! installed here; its CRD is, so the operator's pause and restore of the object can be observed.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::json;
use streamlake_testkit::wait_until;

use super::TestNamespace;

fn scaled_objects() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"),
        "scaledobjects",
    )
}

/// KEDA's ScaledObject CRD, reduced to what the operator touches, unless a real one is installed.
pub async fn install_scaled_object_crd(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    if api
        .get_opt("scaledobjects.keda.sh")
        .await
        .expect("read CRDs")
        .is_none()
    {
        let crd: CustomResourceDefinition = serde_json::from_value(json!({
            "metadata": {"name": "scaledobjects.keda.sh"},
            "spec": {
                "group": "keda.sh",
                "names": {"kind": "ScaledObject", "plural": "scaledobjects", "singular": "scaledobject"},
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1alpha1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
                }]
            }
        }))
        .expect("crd");
        match api.create(&PostParams::default(), &crd).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => panic!("creating the ScaledObject CRD: {e}"),
        }
    }
    wait_until("ScaledObjects are served", Duration::from_secs(30), || async {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &scaled_objects());
        api.list(&Default::default()).await.is_ok()
    })
    .await;
}

pub async fn create_hpa(ns: &TestNamespace, name: &str, deployment: &str) {
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicas": 1, "maxReplicas": 4,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                         "target": {"type": "Utilization", "averageUtilization": 80}}}]
        }
    }))
    .expect("hpa");
    ns.api::<HorizontalPodAutoscaler>()
        .create(&PostParams::default(), &hpa)
        .await
        .expect("HPA created");
}

pub async fn create_scaled_object(ns: &TestNamespace, name: &str, deployment: &str, paused: Option<&str>) {
    let mut object = json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name},
        "spec": {"scaleTargetRef": {"name": deployment}, "triggers": [{"type": "kafka", "metadata": {}}]}
    });
    if let Some(paused) = paused {
        object["metadata"]["annotations"] = json!({"autoscaling.keda.sh/paused-replicas": paused});
    }
    let object: DynamicObject = serde_json::from_value(object).expect("scaled object");
    let api: Api<DynamicObject> = Api::namespaced_with(admin_client(ns), &ns.name, &scaled_objects());
    api.create(&PostParams::default(), &object)
        .await
        .expect("ScaledObject created");
}

pub async fn hpa_annotations(ns: &TestNamespace, name: &str) -> BTreeMap<String, String> {
    ns.api::<HorizontalPodAutoscaler>()
        .get(name)
        .await
        .expect("hpa")
        .annotations()
        .clone()
}

pub async fn scaled_object_annotations(ns: &TestNamespace, name: &str) -> BTreeMap<String, String> {
    let api: Api<DynamicObject> = Api::namespaced_with(admin_client(ns), &ns.name, &scaled_objects());
    api.get(name).await.expect("scaled object").annotations().clone()
}

fn admin_client(ns: &TestNamespace) -> Client {
    ns.client()
}
