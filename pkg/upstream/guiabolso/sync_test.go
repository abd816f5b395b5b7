package guiabolso_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	gb "puente.dev/pkg/upstream/guiabolso"
)

func TestParseSyncEventReadsTheDocumentedBodies(t *testing.T) {
	finished := []byte(`{
"name": "gbconnect:user:sync:accounts:finished",
"version": 1,
"id": "8d0f3c1e-6f0b-4a43-9d5e-2a1b0c9d8e7f",
"flowId": "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",
"payload": {
"synchronizationId": "56223f5e-6196-4db8-a5f4-ff5317d39fdd",
"producerTag": "DEFAULT",
"userTrackingId": "6cdb191d-d821-42cc-9aef-6050352c96d4",
"accounts": [
{"accountId": 6460172, "bacenCode": "001", "result": {"status": "SUCCESS"}},
{"accountId": 6460173, "bacenCode": "341", "result": {"status": "ERROR"}}
]
},
"identity": {}, "auth": {}, "metadata": {}
}`)
	ev, err := gb.ParseSyncEvent(finished)
	require.NoError(t, err)
	require.Equal(t, gb.SyncEvent{
		Name: gb.EventSyncFinished, ID: "8d0f3c1e-6f0b-4a43-9d5e-2a1b0c9d8e7f",
		SynchronizationID: "56223f5e-6196-4db8-a5f4-ff5317d39fdd", ProducerTag: "DEFAULT",
		UserTrackingID: "6cdb191d-d821-42cc-9aef-6050352c96d4",
		Accounts: []gb.SyncAccount{
			{AccountID: 6460172, BacenCode: "001", Status: gb.SyncSuccess},
			{AccountID: 6460173, BacenCode: "341", Status: gb.SyncError},
		},
	}, ev)
	require.True(t, ev.Accounts[0].OK())
	require.False(t, ev.Accounts[1].OK())

	notFound := []byte(`{
"name": "gbconnect:user:notFound",
"version": 1,
"id": "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
"flowId": "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
"payload": {
"userTrackingId": "ac315055-9e5c-4336-ba80-b2850f56108b",
"synchronizationId": "56223f5e-6196-4db8-a5f4-ff5317d39fdd",
"producerTag": "DEFAULT"
},
"identity": {}, "auth": {}, "metadata": {}
}`)
	ev, err = gb.ParseSyncEvent(notFound)
	require.NoError(t, err)
	require.Equal(t, gb.SyncEvent{
		Name: gb.EventUserNotFound, ID: "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
		SynchronizationID: "56223f5e-6196-4db8-a5f4-ff5317d39fdd", ProducerTag: "DEFAULT",
		UserTrackingID: "ac315055-9e5c-4336-ba80-b2850f56108b", NotFound: true,
	}, ev)
}

func TestParseSyncEventRefusesOtherBodies(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":              `<html>`,
		"another event":         `{"name":"gbconnect:sync:accounts:response","payload":{"synchronizationId":"x"}}`,
		"no user":               `{"name":"gbconnect:user:notFound","payload":{"synchronizationId":"x"}}`,
		"no payload":            `{"name":"gbconnect:user:sync:accounts:finished"}`,
		"a non-numeric account": `{"name":"gbconnect:user:sync:accounts:finished","payload":{"userTrackingId":"u","accounts":[{"accountId":"abc"}]}}`,
	} {
		_, err := gb.ParseSyncEvent([]byte(body))
		require.Error(t, err, name)
	}
}
