{{/* The namespace of every namespaced object. */}}
{{- define "kyverno.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "kyverno.labels" -}}
app.kubernetes.io/part-of: kyverno
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.customLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: dict "root" . "component" name. */}}
{{- define "kyverno.selectorLabels" -}}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: kyverno
{{- end -}}

{{/* Labels of one component's objects: dict "root" . "component" name. */}}
{{- define "kyverno.componentLabels" -}}
{{ include "kyverno.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image reference: dict "root" . "image" (registry, repository, tag). */}}
{{- define "kyverno.image" -}}
{{- $registry := default .root.Values.image.registry .image.registry -}}
{{- $tag := default (default .root.Chart.AppVersion .root.Values.image.tag) .image.tag -}}
{{- if $registry -}}
{{ printf "%s/%s:%s" $registry .image.repository $tag }}
{{- else -}}
{{ printf "%s:%s" .image.repository $tag }}
{{- end -}}
{{- end -}}

{{/* A pull policy: dict "root" . "image" (pullPolicy). */}}
{{- define "kyverno.pullPolicy" -}}
{{- default .root.Values.image.pullPolicy .image.pullPolicy -}}
{{- end -}}

{{/* The environment every controller reads: its namespace and pod name. */}}
{{- define "kyverno.env" -}}
- name: KYVERNO_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: KYVERNO_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end -}}

{{/* Probes on the admin endpoints (/livez, /readyz) of the named port. */}}
{{- define "kyverno.adminProbes" -}}
livenessProbe:
  httpGet:
    path: /livez
    port: {{ . }}
  initialDelaySeconds: 5
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ . }}
  initialDelaySeconds: 2
  periodSeconds: 5
  failureThreshold: 3
{{- end -}}

{{/*
A controller's Deployment: dict "root" . "component" name "name" object name "values" the
component's values "containers" the containers' YAML.
*/}}
{{- define "kyverno.deployment" -}}
{{- $selector := dict "root" .root "component" .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  namespace: {{ include "kyverno.namespace" .root }}
  labels:
    {{- include "kyverno.componentLabels" $selector | nindent 4 }}
spec:
  replicas: {{ .values.replicas }}
  revisionHistoryLimit: 10
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: {{ if gt (int .values.replicas) 1 }}1{{ else }}0{{ end }}
  selector:
    matchLabels:
      {{- include "kyverno.selectorLabels" $selector | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "kyverno.componentLabels" $selector | nindent 8 }}
        {{- with .values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .values.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ .name }}
      automountServiceAccountToken: true
      {{- with .root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml .root.Values.podSecurityContext | nindent 8 }}
      {{- with .values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      topologySpreadConstraints:
        {{- if .values.topologySpreadConstraints }}
        {{- toYaml .values.topologySpreadConstraints | nindent 8 }}
        {{- else }}
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "kyverno.selectorLabels" $selector | nindent 14 }}
        - maxSkew: 1
          topologyKey: topology.kubernetes.io/zone
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "kyverno.selectorLabels" $selector | nindent 14 }}
        {{- end }}
      containers:
        {{- .containers | nindent 8 }}
{{- end -}}

{{/* A controller's PodDisruptionBudget (only with more than one replica). */}}
{{- define "kyverno.pdb" -}}
{{- if and .values.podDisruptionBudget.enabled (gt (int .values.replicas) 1) -}}
{{- $selector := dict "root" .root "component" .component -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  namespace: {{ include "kyverno.namespace" .root }}
  labels:
    {{- include "kyverno.componentLabels" $selector | nindent 4 }}
spec:
  minAvailable: {{ .values.podDisruptionBudget.minAvailable }}
  selector:
    matchLabels:
      {{- include "kyverno.selectorLabels" $selector | nindent 6 }}
{{- end -}}
{{- end -}}

{{/* A controller's ServiceAccount. */}}
{{- define "kyverno.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .name }}
  namespace: {{ include "kyverno.namespace" .root }}
  labels:
    {{- include "kyverno.componentLabels" (dict "root" .root "component" .component) | nindent 4 }}
{{- end -}}

{{/* A controller's metrics Service: dict ... "serviceName" name "ports" list of name/port. */}}
{{- define "kyverno.metricsService" -}}
{{- if .values.metricsService.create -}}
{{- $selector := dict "root" .root "component" .component -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ .serviceName }}
  namespace: {{ include "kyverno.namespace" .root }}
  labels:
    {{- include "kyverno.componentLabels" $selector | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "kyverno.selectorLabels" $selector | nindent 4 }}
  ports:
    {{- range .ports }}
    - name: {{ .name }}
      port: {{ .port }}
      targetPort: {{ .targetPort }}
      protocol: TCP
    {{- end }}
{{- end -}}
{{- end -}}

{{/*
Bindings of a ServiceAccount: dict "root" . "component" name "name" SA name "clusterRole" name
"role" name (optional).
*/}}
{{- define "kyverno.bindings" -}}
{{- $labels := include "kyverno.componentLabels" (dict "root" .root "component" .component) -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ .clusterRole }}
  labels:
    {{- $labels | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ .clusterRole }}
subjects:
  - kind: ServiceAccount
    name: {{ .name }}
    namespace: {{ include "kyverno.namespace" .root }}
{{- if .role }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .role }}
  namespace: {{ include "kyverno.namespace" .root }}
  labels:
    {{- $labels | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ .role }}
subjects:
  - kind: ServiceAccount
    name: {{ .name }}
    namespace: {{ include "kyverno.namespace" .root }}
{{- end }}
{{- end -}}

{{/* Leader election on a Lease in Kyverno's namespace (kube-leader-election: get, create, patch). */}}
{{- define "kyverno.leaseRule" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, patch]
{{- end -}}

{{/* Watching the `kyverno` ConfigMap and the namespaces' labels. */}}
{{- define "kyverno.configRules" -}}
- apiGroups: [""]
  resources: [configmaps]
  verbs: [list, watch]
{{- end -}}

{{/* Serving certificates in Secrets of Kyverno's namespace (server-side apply, watch by name). */}}
{{- define "kyverno.certificateRule" -}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch]
{{- end -}}

{{/* Extra resources as rules: dict "resources" list "verbs" list. */}}
{{- define "kyverno.extraResourceRules" -}}
{{- $verbs := .verbs -}}
{{- range .resources }}
- apiGroups: {{ toJson .apiGroups }}
  resources: {{ toJson .resources }}
  verbs: {{ toJson $verbs }}
{{- end }}
{{- end -}}

{{/*
One controller container serving its admin endpoints on port 8000 (or .adminPort): dict "root" .
"values" component values "image" dict "name" container name "resources" "args" list of flags.
*/}}
{{- define "kyverno.controllerContainer" -}}
{{- $port := default 8000 .adminPort -}}
- name: {{ .name }}
  image: {{ include "kyverno.image" .image }}
  imagePullPolicy: {{ include "kyverno.pullPolicy" .image }}
  args:
    - {{ printf "--metrics-addr=0.0.0.0:%v" $port }}
    {{- range .args }}
    - {{ . | quote }}
    {{- end }}
    {{- range $name, $value := .values.extraArgs }}
    - {{ printf "--%s=%v" $name $value | quote }}
    {{- end }}
  env:
    {{- include "kyverno.env" . | nindent 4 }}
    {{- with .values.extraEnvVars }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: {{ default "metrics-port" .portName }}
      containerPort: {{ $port }}
      protocol: TCP
    {{- with .extraPorts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- include "kyverno.adminProbes" (default "metrics-port" .portName) | nindent 2 }}
  resources:
    {{- toYaml .resources | nindent 4 }}
  securityContext:
    {{- toYaml .root.Values.containerSecurityContext | nindent 4 }}
{{- end -}}

{{/*
A Pod Security Standards ClusterPolicy: dict "root" . "name" policy name "title" "level"
(Baseline or Restricted) "description" "rules" the rules' YAML.
*/}}
{{- define "kyverno.pssPolicy" -}}
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: {{ .name }}
  labels:
    {{- include "kyverno.componentLabels" (dict "root" .root "component" "pod-security") | nindent 4 }}
  annotations:
    policies.kyverno.io/title: {{ .title | quote }}
    policies.kyverno.io/category: {{ printf "Pod Security Standards (%s)" .level | quote }}
    policies.kyverno.io/severity: {{ .root.Values.podSecuritySeverity }}
    policies.kyverno.io/subject: Pod
    policies.kyverno.io/description: {{ .description | quote }}
spec:
  validationFailureAction: {{ .root.Values.validationFailureAction }}
  background: true
  rules:
    {{- .rules | nindent 4 }}
{{- end -}}

{{/* The match block of the Pod Security Standards rules (autogen adds the Pod controllers). */}}
{{- define "kyverno.pssMatch" -}}
match:
  any:
    - resources:
        kinds: [Pod]
{{- end -}}

{{/* Requests other than DELETE (deny conditions read the new object). */}}
{{- define "kyverno.pssNotDelete" -}}
preconditions:
  all:
    - key: "{{`{{ request.operation || 'BACKGROUND' }}`}}"
      operator: NotEquals
      value: DELETE
{{- end -}}

{{/* Whether the chart installs a Pod Security Standards profile: "baseline" or "restricted". */}}
{{- define "kyverno.pssLevel" -}}
{{- $level := .Values.podSecurityStandard -}}
{{- if not (has $level (list "" "baseline" "restricted")) -}}
{{- fail (printf "podSecurityStandard must be \"\", baseline or restricted, not %q" $level) -}}
{{- end -}}
{{- if not (has .Values.validationFailureAction (list "Audit" "Enforce")) -}}
{{- fail (printf "validationFailureAction must be Audit or Enforce, not %q" .Values.validationFailureAction) -}}
{{- end -}}
{{- $level -}}
{{- end -}}
