package topology

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// QueueURL looks up the URL of the queue called name. It is the one
// lookup of a queue by name: the worker, the Lambda adapter, the
// dead-letter tooling and the provisioner all use it.
func QueueURL(ctx context.Context, client *sqs.Client, name string) (string, error) {
	out, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		return "", fmt.Errorf("queue %s: %w", name, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// StageQueue is the URL of a stage's queue and of its DLQ.
type StageQueue struct {
	URL    string
	DLQURL string
}

// ResolveQueues looks up the queue and DLQ URLs of the given stages (every
// stage when none is given). The first queue that cannot be found fails
// the whole lookup.
func (n Names) ResolveQueues(ctx context.Context, client *sqs.Client, stages ...pipeline.Stage) (map[pipeline.Stage]StageQueue, error) {
	if len(stages) == 0 {
		stages = pipeline.Stages
	}
	urls := make(map[pipeline.Stage]StageQueue, len(stages))
	for _, st := range stages {
		var q StageQueue
		var err error
		if q.URL, err = QueueURL(ctx, client, n.Queues[st]); err != nil {
			return nil, err
		}
		if q.DLQURL, err = QueueURL(ctx, client, n.DLQs[st]); err != nil {
			return nil, err
		}
		urls[st] = q
	}
	return urls, nil
}
