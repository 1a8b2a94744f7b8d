/* tc ingress: strip an outer IPv4 header of an IP-in-IP packet (protocol 4), so the kernel,
 * which has no ipip module here, delivers the inner packet. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>

static long (*bpf_skb_adjust_room)(void *ctx, int len_diff, unsigned int mode,
                                   unsigned long long flags) = (void *)BPF_FUNC_skb_adjust_room;

__attribute__((section("tc"), used))
int decap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);

	if ((void *)(ip + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP))
		return TC_ACT_OK;
	if (ip->protocol != 4 || ip->ihl != 5)
		return TC_ACT_OK;
	if (bpf_skb_adjust_room(skb, -20, BPF_ADJ_ROOM_MAC, 0))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char _license[] __attribute__((section("license"), used)) = "GPL";
