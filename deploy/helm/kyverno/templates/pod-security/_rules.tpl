{{/*
The rules of the Pod Security Standards profiles, written from the Kubernetes Pod Security
Standards (docs/install.md#pod-security-standards). Every rule matches Pods; autogen adds the
rules for the Pod controllers and CronJobs. `*Containers` patterns cover containers,
initContainers and ephemeralContainers.
*/}}

{{/* A container security context pattern applied to the three container lists. */}}
{{- define "kyverno.pss.allContainers" -}}
=(ephemeralContainers):
  - {{ . | nindent 4 | trim }}
=(initContainers):
  - {{ . | nindent 4 | trim }}
containers:
  - {{ . | nindent 4 | trim }}
{{- end -}}

{{- define "kyverno.pss.hostProcess" -}}
- name: host-process-containers
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  validate:
    message: >-
      HostProcess containers are disallowed. The fields spec.securityContext.windowsOptions.hostProcess,
      spec.containers[*].securityContext.windowsOptions.hostProcess, spec.initContainers[*].securityContext.windowsOptions.hostProcess,
      and spec.ephemeralContainers[*].securityContext.windowsOptions.hostProcess must either be undefined or set to `false`.
    pattern:
      spec:
        =(securityContext):
          =(windowsOptions):
            =(hostProcess): false
        {{- include "kyverno.pss.allContainers" "=(securityContext):\n  =(windowsOptions):\n    =(hostProcess): false" | nindent 8 }}
{{- end -}}

{{- define "kyverno.pss.hostNamespaces" -}}
- name: host-namespaces
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  validate:
    message: >-
      Sharing the host namespaces is disallowed. The fields spec.hostNetwork,
      spec.hostIPC, and spec.hostPID must be unset or set to `false`.
    pattern:
      spec:
        =(hostPID): false
        =(hostIPC): false
        =(hostNetwork): false
{{- end -}}

{{- define "kyverno.pss.privileged" -}}
- name: privileged-containers
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  validate:
    message: >-
      Privileged mode is disallowed. The fields spec.containers[*].securityContext.privileged,
      spec.initContainers[*].securityContext.privileged and spec.ephemeralContainers[*].securityContext.privileged
      must be unset or set to `false`.
    pattern:
      spec:
        {{- include "kyverno.pss.allContainers" "=(securityContext):\n  =(privileged): false" | nindent 8 }}
{{- end -}}

{{- define "kyverno.pss.capabilities" -}}
- name: adding-capabilities
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  {{- include "kyverno.pssNotDelete" . | nindent 2 }}
  validate:
    message: >-
      Any capabilities added beyond the allowed list (AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER,
      FSETID, KILL, MKNOD, NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT)
      are disallowed.
    deny:
      conditions:
        all:
          - key: "{{`{{ request.object.spec.[ephemeralContainers, initContainers, containers][].securityContext.capabilities.add[] }}`}}"
            operator: AnyNotIn
            value: [AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT]
{{- end -}}

{{- define "kyverno.pss.hostPath" -}}
- name: host-path
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  validate:
    message: >-
      HostPath volumes are forbidden. The field spec.volumes[*].hostPath must be unset.
    pattern:
      spec:
        =(volumes):
          - X(hostPath): "null"
{{- end -}}

{{- define "kyverno.pss.hostPorts" -}}
- name: host-ports-none
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  {{- if .Values.podSecurityAllowedHostPortRanges }}
  {{- include "kyverno.pssNotDelete" . | nindent 2 }}
  validate:
    message: >-
      Use of host ports is disallowed. The only permitted hostPorts are 0 and those in
      {{ join ", " .Values.podSecurityAllowedHostPortRanges }}.
    deny:
      conditions:
        all:
          - key: "{{`{{ request.object.spec.[ephemeralContainers, initContainers, containers][].ports[].hostPort }}`}}"
            operator: AnyNotIn
            value: [0]
          {{- range .Values.podSecurityAllowedHostPortRanges }}
          - key: "{{`{{ request.object.spec.[ephemeralContainers, initContainers, containers][].ports[].hostPort }}`}}"
            operator: AnyNotIn
            value: {{ . | quote }}
          {{- end }}
  {{- else }}
  validate:
    message: >-
      Use of host ports is disallowed. The fields spec.containers[*].ports[*].hostPort,
      spec.initContainers[*].ports[*].hostPort, and spec.ephemeralContainers[*].ports[*].hostPort
      must either be unset or set to `0`.
    pattern:
      spec:
        {{- include "kyverno.pss.allContainers" "=(ports):\n  - =(hostPort): 0" | nindent 8 }}
  {{- end }}
{{- end -}}

{{/* Kubernetes 1.34's Host Probes / Lifecycle Hooks control (containers and initContainers;
ephemeral containers have neither). */}}
{{- define "kyverno.pss.hostProbes" -}}
- name: host-probes
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  {{- include "kyverno.pssNotDelete" . | nindent 2 }}
  validate:
    message: >-
      Probes and lifecycle handlers may not target another host. The host field of the httpGet
      and tcpSocket handlers of livenessProbe, readinessProbe, startupProbe, lifecycle.postStart
      and lifecycle.preStop in spec.containers[*] and spec.initContainers[*] must be unset or empty.
    deny:
      conditions:
        all:
          - key: "{{`{{ request.object.spec.[initContainers, containers][].[livenessProbe, readinessProbe, startupProbe, lifecycle.postStart, lifecycle.preStop][].[httpGet, tcpSocket][].host }}`}}"
            operator: AnyNotIn
            value: [""]
{{- end -}}

{{- define "kyverno.pss.appArmor" -}}
- name: app-armor
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  validate:
    message: >-
      Specifying other AppArmor profiles is disallowed. The annotation
      `container.apparmor.security.beta.kubernetes.io` if defined must not be set to anything
      other than `runtime/default` or `localhost/*`, and the appArmorProfile types to anything
      other than `RuntimeDefault` or `Localhost`.
    pattern:
      =(metadata):
        =(annotations):
          =(container.apparmor.security.beta.kubernetes.io/*): "runtime/default | localhost/*"
      spec:
        =(securityContext):
          =(appArmorProfile):
            =(type): "RuntimeDefault | Localhost"
        {{- include "kyverno.pss.allContainers" "=(securityContext):\n  =(appArmorProfile):\n    =(type): \"RuntimeDefault | Localhost\"" | nindent 8 }}
{{- end -}}

{{- define "kyverno.pss.seLinux" -}}
- name: selinux-type
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  validate:
    message: >-
      Setting the SELinux type is restricted. The fields spec.securityContext.seLinuxOptions.type,
      spec.containers[*].securityContext.seLinuxOptions.type, spec.initContainers[*].securityContext.seLinuxOptions.type,
      and spec.ephemeralContainers[*].securityContext.seLinuxOptions.type must either be unset or set to
      one of the allowed values (container_t, container_init_t, container_kvm_t or container_engine_t).
    pattern:
      spec:
        =(securityContext):
          =(seLinuxOptions):
            =(type): "container_t | container_init_t | container_kvm_t | container_engine_t"
        {{- include "kyverno.pss.allContainers" "=(securityContext):\n  =(seLinuxOptions):\n    =(type): \"container_t | container_init_t | container_kvm_t | container_engine_t\"" | nindent 8 }}
- name: selinux-user-role
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  validate:
    message: >-
      Setting the SELinux user or role is forbidden. The fields spec.securityContext.seLinuxOptions.user,
      spec.securityContext.seLinuxOptions.role, spec.containers[*].securityContext.seLinuxOptions.user,
      spec.containers[*].securityContext.seLinuxOptions.role, spec.initContainers[*].securityContext.seLinuxOptions.user,
      spec.initContainers[*].securityContext.seLinuxOptions.role, spec.ephemeralContainers[*].securityContext.seLinuxOptions.user,
      and spec.ephemeralContainers[*].securityContext.seLinuxOptions.role must be unset.
    pattern:
      spec:
        =(securityContext):
          =(seLinuxOptions):
            X(user): "null"
            X(role): "null"
        {{- include "kyverno.pss.allContainers" "=(securityContext):\n  =(seLinuxOptions):\n    X(user): \"null\"\n    X(role): \"null\"" | nindent 8 }}
{{- end -}}

{{- define "kyverno.pss.procMount" -}}
- name: check-proc-mount
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  validate:
    message: >-
      Changing the proc mount from the default is not allowed. The fields
      spec.containers[*].securityContext.procMount, spec.initContainers[*].securityContext.procMount,
      and spec.ephemeralContainers[*].securityContext.procMount must be unset or set to `Default`.
    pattern:
      spec:
        {{- include "kyverno.pss.allContainers" "=(securityContext):\n  =(procMount): Default" | nindent 8 }}
{{- end -}}

{{- define "kyverno.pss.seccomp" -}}
- name: check-seccomp
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  validate:
    message: >-
      Use of custom Seccomp profiles is disallowed. The fields spec.securityContext.seccompProfile.type,
      spec.containers[*].securityContext.seccompProfile.type, spec.initContainers[*].securityContext.seccompProfile.type,
      and spec.ephemeralContainers[*].securityContext.seccompProfile.type must be unset or set to
      `RuntimeDefault` or `Localhost`.
    pattern:
      spec:
        =(securityContext):
          =(seccompProfile):
            =(type): "RuntimeDefault | Localhost"
        {{- include "kyverno.pss.allContainers" "=(securityContext):\n  =(seccompProfile):\n    =(type): \"RuntimeDefault | Localhost\"" | nindent 8 }}
{{- end -}}

{{- define "kyverno.pss.sysctls" -}}
- name: check-sysctls
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  validate:
    message: >-
      Setting additional sysctls above the allowed type is disallowed. The field
      spec.securityContext.sysctls must be unset or not use any other names than kernel.shm_rmid_forced,
      net.ipv4.ip_local_port_range, net.ipv4.ip_unprivileged_port_start, net.ipv4.tcp_syncookies,
      net.ipv4.ping_group_range, net.ipv4.ip_local_reserved_ports, net.ipv4.tcp_keepalive_time,
      net.ipv4.tcp_fin_timeout, net.ipv4.tcp_keepalive_intvl and net.ipv4.tcp_keepalive_probes.
    pattern:
      spec:
        =(securityContext):
          =(sysctls):
            - =(name): "kernel.shm_rmid_forced | net.ipv4.ip_local_port_range | net.ipv4.ip_unprivileged_port_start | net.ipv4.tcp_syncookies | net.ipv4.ping_group_range | net.ipv4.ip_local_reserved_ports | net.ipv4.tcp_keepalive_time | net.ipv4.tcp_fin_timeout | net.ipv4.tcp_keepalive_intvl | net.ipv4.tcp_keepalive_probes"
{{- end -}}

{{- define "kyverno.pss.privilegeEscalation" -}}
- name: privilege-escalation
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  validate:
    message: >-
      Privilege escalation is disallowed. The fields spec.containers[*].securityContext.allowPrivilegeEscalation,
      spec.initContainers[*].securityContext.allowPrivilegeEscalation, and spec.ephemeralContainers[*].securityContext.allowPrivilegeEscalation
      must be set to `false`.
    pattern:
      spec:
        {{- include "kyverno.pss.allContainers" "securityContext:\n  allowPrivilegeEscalation: false" | nindent 8 }}
{{- end -}}

{{- define "kyverno.pss.capabilitiesStrict" -}}
- name: require-drop-all
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  {{- include "kyverno.pssNotDelete" . | nindent 2 }}
  validate:
    message: >-
      Containers must drop `ALL` capabilities.
    foreach:
      - list: "request.object.spec.[ephemeralContainers, initContainers, containers][]"
        deny:
          conditions:
            all:
              - key: ALL
                operator: AnyNotIn
                value: {{ "{{ element.securityContext.capabilities.drop[] || `[]` }}" | quote }}
- name: adding-capabilities-strict
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  {{- include "kyverno.pssNotDelete" . | nindent 2 }}
  validate:
    message: >-
      Any capabilities added other than NET_BIND_SERVICE are disallowed.
    foreach:
      - list: "request.object.spec.[ephemeralContainers, initContainers, containers][]"
        deny:
          conditions:
            all:
              - key: {{ "{{ element.securityContext.capabilities.add[] || `[]` }}" | quote }}
                operator: AnyNotIn
                value: [NET_BIND_SERVICE]
{{- end -}}

{{- define "kyverno.pss.runAsNonRoot" -}}
- name: run-as-non-root
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  validate:
    message: >-
      Running as root is not allowed. Either the field spec.securityContext.runAsNonRoot must be
      set to `true`, or the fields spec.containers[*].securityContext.runAsNonRoot,
      spec.initContainers[*].securityContext.runAsNonRoot, and spec.ephemeralContainers[*].securityContext.runAsNonRoot
      must be set to `true`.
    anyPattern:
      - spec:
          securityContext:
            runAsNonRoot: true
          {{- include "kyverno.pss.allContainers" "=(securityContext):\n  =(runAsNonRoot): true" | nindent 10 }}
      - spec:
          {{- include "kyverno.pss.allContainers" "securityContext:\n  runAsNonRoot: true" | nindent 10 }}
- name: run-as-non-root-user
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  validate:
    message: >-
      Running as root is not allowed. The fields spec.securityContext.runAsUser,
      spec.containers[*].securityContext.runAsUser, spec.initContainers[*].securityContext.runAsUser,
      and spec.ephemeralContainers[*].securityContext.runAsUser must be unset or set to a number
      greater than zero.
    pattern:
      spec:
        =(securityContext):
          =(runAsUser): ">0"
        {{- include "kyverno.pss.allContainers" "=(securityContext):\n  =(runAsUser): \">0\"" | nindent 8 }}
{{- end -}}

{{- define "kyverno.pss.seccompStrict" -}}
- name: check-seccomp-strict
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  validate:
    message: >-
      Use of custom Seccomp profiles is disallowed. The field spec.securityContext.seccompProfile.type
      must be set to `RuntimeDefault` or `Localhost`, or every container's
      securityContext.seccompProfile.type must be, and none may be set to another value.
    anyPattern:
      - spec:
          securityContext:
            seccompProfile:
              type: "RuntimeDefault | Localhost"
          {{- include "kyverno.pss.allContainers" "=(securityContext):\n  =(seccompProfile):\n    =(type): \"RuntimeDefault | Localhost\"" | nindent 10 }}
      - spec:
          =(securityContext):
            =(seccompProfile):
              =(type): "RuntimeDefault | Localhost"
          {{- include "kyverno.pss.allContainers" "securityContext:\n  seccompProfile:\n    type: \"RuntimeDefault | Localhost\"" | nindent 10 }}
{{- end -}}

{{- define "kyverno.pss.volumeTypes" -}}
- name: restricted-volumes
  {{- include "kyverno.pssMatch" . | nindent 2 }}
  {{- include "kyverno.pssNotDelete" . | nindent 2 }}
  validate:
    message: >-
      Only the following types of volumes may be used: configMap, csi, downwardAPI, emptyDir,
      ephemeral, persistentVolumeClaim, projected, and secret.
    deny:
      conditions:
        all:
          - key: {{ "{{ request.object.spec.volumes[].keys(@)[] || `[]` }}" | quote }}
            operator: AnyNotIn
            value: [name, configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret]
{{- end -}}
