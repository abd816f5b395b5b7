package consent

import (
	"context"
	"fmt"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	extractionv1 "puente.dev/gen/go/puente/extraction/v1"
	syncv1 "puente.dev/gen/go/puente/sync/v1"
)

// ExtractionWatcher tells the extraction service of consents that end, so that their data is
// deleted on its schedule.
type ExtractionWatcher struct {
	Client       extractionv1.ExtractionServiceClient
	ServiceToken string
}

func (w ExtractionWatcher) ConsentChanged(ctx context.Context, c Consent, ch Change) error {
	if !ch.Status.Final() {
		return nil
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+w.ServiceToken)
	if _, err := w.Client.ConsentChanged(ctx, &extractionv1.ConsentChangedRequest{
		ClientId: c.ClientID, ConsentId: c.ID, Status: statusProto[ch.Status], ChangeTime: timestamppb.New(ch.At),
	}); err != nil {
		return fmt.Errorf("tell extraction consent %s is %s: %w", c.ID, ch.Status, err)
	}
	return nil
}

// SyncWatcher tells the sync service of consents authorised (they get a refresh schedule) and
// ended (they lose it).
type SyncWatcher struct {
	Client       syncv1.SyncServiceClient
	ServiceToken string
}

func (w SyncWatcher) ConsentChanged(ctx context.Context, c Consent, ch Change) error {
	if ch.Status != Authorised && !ch.Status.Final() {
		return nil
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+w.ServiceToken)
	if _, err := w.Client.ConsentChanged(ctx, &syncv1.ConsentChangedRequest{
		ClientId: c.ClientID, ConsentId: c.ID, UserId: c.UserID, Status: statusProto[ch.Status], ChangeTime: timestamppb.New(ch.At),
	}); err != nil {
		return fmt.Errorf("tell sync consent %s is %s: %w", c.ID, ch.Status, err)
	}
	return nil
}
