{{/* Names and labels shared by every template. */}}

{{- define "changegate.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "changegate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "changegate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ include "changegate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: changegate
{{- end -}}

{{- define "changegate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "changegate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "changegate.webhookName" -}}{{ include "changegate.fullname" . }}-webhook{{- end -}}
{{- define "changegate.controllerName" -}}{{ include "changegate.fullname" . }}-controller{{- end -}}

{{/* The URL of one webhook path, or the Service that serves it. */}}
{{- define "changegate.clientConfig" -}}
{{- if .root.Values.webhook.url }}
url: {{ printf "%s/%s" (trimSuffix "/" .root.Values.webhook.url) .path }}
{{- with .root.Values.webhook.caBundle }}
caBundle: {{ . }}
{{- end }}
{{- else }}
service:
  name: {{ include "changegate.webhookName" .root }}
  namespace: {{ .root.Release.Namespace }}
  path: /{{ .path }}
  port: 443
{{- /* With cert-manager, its CA injector owns caBundle: the chart leaves it out. */}}
{{- with .caBundle }}
caBundle: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Namespaces the webhook never governs: kube-system and the release's own. */}}
{{- define "changegate.excludedNamespaces" -}}
- key: kubernetes.io/metadata.name
  operator: NotIn
  values: {{ concat (list "kube-system" .Release.Namespace) .Values.webhook.excludedNamespaces | uniq | toJson }}
{{- end -}}

{{/* The user-facing roles a platform team binds: changegate-<role> for the release "changegate". */}}
{{- define "changegate.userRoleName" -}}
{{- printf "%s-%s" (include "changegate.fullname" .root) .role -}}
{{- end -}}

{{/* Scheduling and security shared by both roles' pod specs. */}}
{{- define "changegate.podSpecCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
securityContext: {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{- define "changegate.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
The webhook's CA and serving certificate: kept from the existing Secret on
upgrade (so the caBundle stays stable), generated on first install. Computed
once per render and shared through .Values._tls.
*/}}
{{- define "changegate.tls" -}}
{{- if not .Values._tls -}}
{{- $name := printf "%s-tls" (include "changegate.webhookName" .) -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name -}}
{{- if and $existing $existing.data (hasKey $existing.data "ca.crt") -}}
{{- $_ := set .Values "_tls" (dict "ca" (index $existing.data "ca.crt") "crt" (index $existing.data "tls.crt") "key" (index $existing.data "tls.key")) -}}
{{- else -}}
{{- $svc := include "changegate.webhookName" . -}}
{{- $ns := .Release.Namespace -}}
{{- $ca := genCA "changegate-webhook-ca" 3650 -}}
{{- $cert := genSignedCert (printf "%s.%s.svc" $svc $ns) nil (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns)) 3650 $ca -}}
{{- $_ := set .Values "_tls" (dict "ca" ($ca.Cert | b64enc) "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "changegate.caBundle" -}}
{{- if .Values.tls.certManager.enabled -}}
{{- else -}}
{{- include "changegate.tls" . -}}
{{- .Values._tls.ca -}}
{{- end -}}
{{- end -}}

{{/* Environment both roles share: governance settings from values. */}}
{{- define "changegate.env" -}}
- name: CHANGEGATE_NAMESPACE
  value: {{ .Release.Namespace }}
- name: CHANGEGATE_CHANGE_MANAGER_GROUPS
  value: {{ join "," .Values.governance.changeManagerGroups | quote }}
- name: CHANGEGATE_PLATFORM_ADMIN_GROUPS
  value: {{ join "," .Values.governance.platformAdminGroups | quote }}
- name: CHANGEGATE_GOVERNED_LABEL
  value: {{ .Values.governance.governedLabel | quote }}
- name: CHANGEGATE_OPERATOR_USERS
  value: {{ printf "system:serviceaccount:%s:%s" .Release.Namespace (include "changegate.controllerName" .) | quote }}
- name: CHANGEGATE_METRICS_PORT
  value: {{ .Values.metrics.port | quote }}
- name: CHANGEGATE_HEALTH_ADDRESS
  value: "0.0.0.0"
- name: CHANGEGATE_RETENTION_DAYS
  value: {{ .Values.evidence.retentionDays | quote }}
- name: CHANGEGATE_INCIDENT_MANAGEMENT_SERVICE
  value: {{ .Values.incidents.incidentManagementService | quote }}
- name: CHANGEGATE_INCIDENT_MANAGER_GROUPS
  value: {{ join "," .Values.incidents.incidentManagerGroups | quote }}
{{- end -}}

{{/*
matchConditions that keep Kubernetes' own controllers away from the webhook when they
write for the owner they manage (a Pod for its ReplicaSet, a ReplicaSet for its
Deployment, a Job for its CronJob): that owner's write was already decided, so these
are never blocked, not even while the webhook is down. Both halves must hold: the
authenticated user, which nobody forges, and a controller ownerReference of the kind
that controller manages. The webhook's first rule checks the same (core/change/controllers.py).
*/}}
{{- define "changegate.controllerWrites" -}}
{{- $owners := dict
  "pods" (dict "replicaset-controller" "ReplicaSet" "statefulset-controller" "StatefulSet" "daemon-set-controller" "DaemonSet" "job-controller" "Job")
  "replicasets" (dict "deployment-controller" "Deployment")
  "jobs" (dict "cronjob-controller" "CronJob") -}}
{{- with get $owners . }}
{{- $pairs := list }}
{{- range $controller, $kind := . }}
{{- $pairs = append $pairs (printf "(request.userInfo.username == 'system:serviceaccount:kube-system:%s' && r.kind == '%s')" $controller $kind) }}
{{- end }}
{{- $pairs = append $pairs (printf "(request.userInfo.username == 'system:kube-controller-manager' && r.kind in %s)" (values . | sortAlpha | toJson | replace "\"" "'")) }}
matchConditions:
  - name: not-a-controller-writing-for-its-owner
    expression: >-
      !(has(object.metadata.ownerReferences) &&
      object.metadata.ownerReferences.exists(r, has(r.controller) && r.controller &&
      ({{ join " || " $pairs }})))
{{- end }}
{{- end -}}
