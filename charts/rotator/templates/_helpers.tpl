{{/*
Names. Every object name derives from rotator.fullname, so two releases (in one namespace or
in two) never collide on the ServiceAccount, the cluster-scoped RBAC or the leader Lease.
*/}}
{{- define "rotator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rotator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "rotator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rotator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Lease the replicas elect a leader on (and the Role that names it). */}}
{{- define "rotator.leaseName" -}}
{{- printf "%s-leader" (include "rotator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rotator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "rotator.selector" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "rotator.selector" -}}
app.kubernetes.io/name: {{ include "rotator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* repository:tag, or repository@digest when a digest pins the image. */}}
{{- define "rotator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The subjects every operator binding names: the ServiceAccount and rbac.extraSubjects. */}}
{{- define "rotator.subjects" -}}
- kind: ServiceAccount
  name: {{ include "rotator.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- with .Values.rbac.extraSubjects }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The rules that follow the watched namespaces: cluster-wide, or one Role per namespace. */}}
{{- define "rotator.namespacedRules" -}}
# Our resources: watch them, patch status and metadata (finalizers, kopf's bookkeeping).
# The operator never writes spec.
- apiGroups: [rotator.dev]
  resources: [serviceprincipalsecrets, databrickssecretbindings]
  verbs: [get, list, watch, patch]
- apiGroups: [rotator.dev]
  resources: [serviceprincipalsecrets/status, databrickssecretbindings/status]
  verbs: [get, patch]
# Events for every step and failure.
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# Personal access tokens named by a binding's workspace.auth.patSecretRef: read one by name.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end -}}
