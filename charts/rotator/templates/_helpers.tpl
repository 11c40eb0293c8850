{{- define "rotator.labels" -}}
app.kubernetes.io/name: rotator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
{{- define "rotator.selector" -}}
app.kubernetes.io/name: rotator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
