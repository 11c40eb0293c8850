//go:build tools

// Package controlplane pins the kube-apiserver and etcd sources the e2e
// testbed builds. It is never imported; `go mod tidy` reads these imports to
// resolve both commands into one consistent module graph.
package controlplane

import (
	_ "go.etcd.io/etcd/server/v3/etcdmain"
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
)
