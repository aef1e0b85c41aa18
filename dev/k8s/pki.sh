# The control plane's PKI and kubeconfigs, made with the openssl CLI. Sourced by dev/k8s/up.
#
# Every file is created only if it is missing or no longer matches the CA, so `up` is idempotent;
# k8s_pki_ensure sets K8S_PKI_CHANGED=1 when it (re)issued anything, so running components get restarted.
# shellcheck shell=bash disable=SC2034  # K8S_PKI_CHANGED is read by dev/k8s/up

K8S_PKI=$SL_STATE/pki
K8S_PKI_CHANGED=0
K8S_CERT_DAYS=3650

# new_key FILE: an RSA 2048 key in PKCS#8 PEM (every client we use, Rust and Python, reads that).
k8s_new_key() {
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
  chmod 600 "$1"
}

# k8s_ensure_ca [NAME [CN]]: a self-signed CA at $K8S_PKI/NAME.{crt,key} (default: the cluster CA).
k8s_ensure_ca() {
  local ca=$K8S_PKI/${1:-ca} cn=${2:-streamlake-dev-ca}
  if [[ -s $ca.crt && -s $ca.key ]] && openssl x509 -in "$ca.crt" -noout -checkend 86400 >/dev/null; then
    return 0
  fi
  sl_log "creating CA $cn in $K8S_PKI"
  k8s_new_key "$ca.key"
  openssl req -x509 -new -key "$ca.key" -days "$K8S_CERT_DAYS" -subj "/CN=$cn" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" -out "$ca.crt"
  K8S_PKI_CHANGED=1
}

# k8s_ensure_cert NAME SUBJECT USAGE [SANS [CA]]: issue $K8S_PKI/NAME.{crt,key} signed by CA (default ca).
# USAGE is clientAuth or serverAuth; SANS is an openssl subjectAltName value.
k8s_ensure_cert() {
  local name=$1 subject=$2 usage=$3 sans=${4:-} ca=$K8S_PKI/${5:-ca} base=$K8S_PKI/$1
  if [[ -s $base.crt && -s $base.key ]] &&
    openssl verify -CAfile "$ca.crt" "$base.crt" >/dev/null 2>&1 &&
    openssl x509 -in "$base.crt" -noout -checkend 86400 >/dev/null &&
    [[ $(openssl x509 -in "$base.crt" -noout -subject -nameopt compat) == "subject=$subject" ]] &&
    { [[ -z $sans ]] || [[ -f $base.sans && $(cat "$base.sans") == "$sans" ]]; }; then
    return 0
  fi
  sl_log "issuing certificate $name ($subject)"
  local ext
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    echo "authorityKeyIdentifier=keyid"
    [[ -n $sans ]] && echo "subjectAltName=$sans"
  } >"$ext"
  k8s_new_key "$base.key"
  openssl req -new -key "$base.key" -subj "$subject" -out "$base.csr"
  openssl x509 -req -in "$base.csr" -CA "$ca.crt" -CAkey "$ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$K8S_CERT_DAYS" -extfile "$ext" -out "$base.crt" 2>/dev/null
  rm -f "$ext" "$base.csr"
  if [[ -n $sans ]]; then echo "$sans" >"$base.sans"; fi
  K8S_PKI_CHANGED=1
}

# The key pair that signs and verifies service-account tokens. Kept across CA renewals: tokens stay valid.
k8s_ensure_sa_keys() {
  local sa=$K8S_PKI/service-account
  [[ -s $sa.key && -s $sa.pub ]] && return 0
  sl_log "creating the service-account signing key"
  k8s_new_key "$sa.key"
  openssl pkey -in "$sa.key" -pubout -out "$sa.pub"
  K8S_PKI_CHANGED=1
}

# k8s_pki_ensure SERVICE_IP NODE_NAME: the whole PKI. SERVICE_IP is the first IP of the service range.
k8s_pki_ensure() {
  local service_ip=$1 node=$2
  mkdir -p "$K8S_PKI"
  chmod 700 "$K8S_PKI"
  k8s_ensure_ca
  k8s_ensure_sa_keys
  k8s_ensure_cert apiserver "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,IP:$service_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  # The apiserver's identity towards kubelets (logs, exec), should the process kubelet serve them.
  k8s_ensure_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  k8s_ensure_cert admin "/O=system:masters/CN=admin" clientAuth
  k8s_ensure_cert kube-controller-manager "/CN=system:kube-controller-manager" clientAuth
  k8s_ensure_cert kube-scheduler "/CN=system:kube-scheduler" clientAuth
  k8s_ensure_cert kubelet "/O=system:nodes/CN=system:node:$node" clientAuth
  # The aggregation layer's front proxy: without its CA in kube-system/extension-apiserver-authentication,
  # the controller manager and scheduler log an authentication error over and over.
  k8s_ensure_ca front-proxy-ca streamlake-dev-front-proxy-ca
  k8s_ensure_cert front-proxy-client "/CN=front-proxy-client" clientAuth "" front-proxy-ca
}

# k8s_ensure_kubeconfig FILE CERT_NAME USER SERVER: a kubeconfig with everything embedded, rewritten
# only when missing or older than its certificate.
k8s_ensure_kubeconfig() {
  local file=$1 cert=$K8S_PKI/$2 user=$3 server=$4
  [[ -s $file && $file -nt $cert.crt && $file -nt $K8S_PKI/ca.crt ]] &&
    grep -q "server: $server\$" "$file" && return 0
  local tmp=$file.tmp
  rm -f "$tmp"
  "$KUBECTL" config --kubeconfig="$tmp" set-cluster streamlake-dev --server="$server" \
    --certificate-authority="$K8S_PKI/ca.crt" --embed-certs=true >/dev/null
  "$KUBECTL" config --kubeconfig="$tmp" set-credentials "$user" \
    --client-certificate="$cert.crt" --client-key="$cert.key" --embed-certs=true >/dev/null
  "$KUBECTL" config --kubeconfig="$tmp" set-context streamlake-dev --cluster=streamlake-dev --user="$user" >/dev/null
  "$KUBECTL" config --kubeconfig="$tmp" use-context streamlake-dev >/dev/null
  chmod 600 "$tmp"
  mv -f "$tmp" "$file"
}
