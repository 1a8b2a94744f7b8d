/* tc ingress decapsulator for the tunnel-mode real servers of the RVS labs: strips the outer
 * headers of IP-in-IP (protocol 4), GRE carrying IPv4 (protocol 47, 4-byte header) and GUE
 * (UDP to port 6080, 4-byte header carrying IPv4), so the kernel, which has no ipip or gre
 * module here, delivers the inner packet. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#define GUE_PORT 6080
static long (*bpf_skb_pull_data)(void *ctx, unsigned int len) = (void *)BPF_FUNC_skb_pull_data;
static long (*bpf_skb_adjust_room)(void *ctx, int len_diff, unsigned int mode,
                                   unsigned long long flags) = (void *)BPF_FUNC_skb_adjust_room;
__attribute__((section("tc"), used))
int decap(struct __sk_buff *skb)
{
	/* af_packet senders (the director) build skbs whose headers may sit partly in page
	 * fragments: make the outer headers linear before reading them. */
	bpf_skb_pull_data(skb, 14 + 20 + 8 + 4);
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	unsigned char *l4 = (unsigned char *)(ip + 1);
	int strip = 0;
	if ((void *)(ip + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP) || ip->ihl != 5)
		return TC_ACT_OK;
	if (ip->protocol == 4) {
		strip = 20;
	} else if (ip->protocol == 47) {
		if ((void *)(l4 + 4) > end || l4[0] != 0 || l4[1] != 0 || l4[2] != 0x08 || l4[3] != 0)
			return TC_ACT_OK;
		strip = 24;
	} else if (ip->protocol == 17) {
		struct udphdr *udp = (struct udphdr *)l4;
		unsigned char *gue = l4 + sizeof(*udp);
		if ((void *)(gue + 4) > end || udp->dest != __builtin_bswap16(GUE_PORT) || gue[1] != 4)
			return TC_ACT_OK;
		strip = 32;
	} else {
		return TC_ACT_OK;
	}
	if (bpf_skb_adjust_room(skb, -strip, BPF_ADJ_ROOM_MAC, 0))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}
char _license[] __attribute__((section("license"), used)) = "GPL";
