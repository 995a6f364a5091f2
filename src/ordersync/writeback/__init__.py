"""Write-back: operations queued in the outbox, applied once through each platform's writer."""
