package kube

import "time"

// The API's JSON for the objects the diagnosis reads, reduced to the
// fields it reads. These mirror k8s.io/api/core/v1 field for field (same
// JSON names), so a pod from the API server and a pasted `kubectl get pod
// -o json` decode the same way; keeping them here rather than importing
// k8s.io/api spares the binary several megabytes of generated types.

// APITime is a metav1.Time on the wire: RFC 3339, or null.
type APITime = time.Time

// ObjectMeta is metav1.ObjectMeta, reduced.
type ObjectMeta struct {
	Name                       string            `json:"name"`
	Namespace                  string            `json:"namespace,omitempty"`
	Labels                     map[string]string `json:"labels,omitempty"`
	Annotations                map[string]string `json:"annotations,omitempty"`
	CreationTimestamp          *APITime          `json:"creationTimestamp,omitempty"`
	DeletionTimestamp          *APITime          `json:"deletionTimestamp,omitempty"`
	DeletionGracePeriodSeconds *int64            `json:"deletionGracePeriodSeconds,omitempty"`
	OwnerReferences            []OwnerReference  `json:"ownerReferences,omitempty"`
}

// OwnerReference is metav1.OwnerReference, reduced.
type OwnerReference struct {
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Controller *bool  `json:"controller,omitempty"`
}

// APIPod is corev1.Pod, reduced.
type APIPod struct {
	Kind     string     `json:"kind,omitempty"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     struct {
		NodeName string `json:"nodeName,omitempty"`
	} `json:"spec"`
	Status struct {
		Phase                 string               `json:"phase,omitempty"`
		Reason                string               `json:"reason,omitempty"`
		Message               string               `json:"message,omitempty"`
		Conditions            []APICondition       `json:"conditions,omitempty"`
		InitContainerStatuses []APIContainerStatus `json:"initContainerStatuses,omitempty"`
		ContainerStatuses     []APIContainerStatus `json:"containerStatuses,omitempty"`
	} `json:"status"`
}

// APICondition is a pod or node condition on the wire.
type APICondition struct {
	Type               string   `json:"type"`
	Status             string   `json:"status"`
	Reason             string   `json:"reason,omitempty"`
	Message            string   `json:"message,omitempty"`
	LastTransitionTime *APITime `json:"lastTransitionTime,omitempty"`
	LastHeartbeatTime  *APITime `json:"lastHeartbeatTime,omitempty"`
}

// APIContainerStatus is corev1.ContainerStatus, reduced.
type APIContainerStatus struct {
	Name         string            `json:"name"`
	ContainerID  string            `json:"containerID,omitempty"`
	Image        string            `json:"image,omitempty"`
	Ready        bool              `json:"ready"`
	RestartCount int32             `json:"restartCount"`
	State        APIContainerState `json:"state"`
	LastState    APIContainerState `json:"lastState"`
}

// APIContainerState is corev1.ContainerState: one of three is set.
type APIContainerState struct {
	Waiting *struct {
		Reason  string `json:"reason,omitempty"`
		Message string `json:"message,omitempty"`
	} `json:"waiting,omitempty"`
	Running *struct {
		StartedAt *APITime `json:"startedAt,omitempty"`
	} `json:"running,omitempty"`
	Terminated *APITerminated `json:"terminated,omitempty"`
}

// APITerminated is corev1.ContainerStateTerminated.
type APITerminated struct {
	ExitCode   int32    `json:"exitCode"`
	Signal     int32    `json:"signal,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	Message    string   `json:"message,omitempty"`
	StartedAt  *APITime `json:"startedAt,omitempty"`
	FinishedAt *APITime `json:"finishedAt,omitempty"`
}

// APINode is corev1.Node, reduced.
type APINode struct {
	Kind     string     `json:"kind,omitempty"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     struct {
		Unschedulable bool `json:"unschedulable,omitempty"`
		Taints        []struct {
			Key       string   `json:"key"`
			Value     string   `json:"value,omitempty"`
			Effect    string   `json:"effect"`
			TimeAdded *APITime `json:"timeAdded,omitempty"`
		} `json:"taints,omitempty"`
	} `json:"spec"`
	Status struct {
		Conditions []APICondition `json:"conditions,omitempty"`
		Addresses  []struct {
			Type    string `json:"type"`
			Address string `json:"address"`
		} `json:"addresses,omitempty"`
		NodeInfo struct {
			KubeletVersion string `json:"kubeletVersion,omitempty"`
		} `json:"nodeInfo"`
	} `json:"status"`
}

// APIEvent is corev1.Event, reduced.
type APIEvent struct {
	Kind           string `json:"kind,omitempty"`
	InvolvedObject struct {
		Kind      string `json:"kind,omitempty"`
		Namespace string `json:"namespace,omitempty"`
		Name      string `json:"name,omitempty"`
	} `json:"involvedObject"`
	Reason        string   `json:"reason,omitempty"`
	Message       string   `json:"message,omitempty"`
	Type          string   `json:"type,omitempty"`
	Count         int32    `json:"count,omitempty"`
	LastTimestamp *APITime `json:"lastTimestamp,omitempty"`
	EventTime     *APITime `json:"eventTime,omitempty"`
	Series        *struct {
		Count            int32    `json:"count,omitempty"`
		LastObservedTime *APITime `json:"lastObservedTime,omitempty"`
	} `json:"series,omitempty"`
}

// APIList is a list of any of them, with the continue token of a page.
type APIList[T any] struct {
	Kind     string `json:"kind,omitempty"`
	Metadata struct {
		Continue string `json:"continue,omitempty"`
	} `json:"metadata"`
	Items []T `json:"items"`
}
