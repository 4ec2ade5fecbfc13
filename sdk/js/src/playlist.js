export class PlaylistDoc {} export class PlaylistEditor {}
